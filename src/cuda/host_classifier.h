// defines: cuda::DeviceClassifier (an inference network on the GPU over device parameters it
//          shares, as a Classifier over host batches: a training run's tester),
//          cuda::HostClassifier (the same over its own device copy of host parameters: evaluation
//          and prediction on a GPU, with the CPU engine's interface)
#pragma once
#include "cuda/context.h"
#include "cuda/densenet.h"
#include "model/classifier.h"

#include <vector>

namespace dn::cuda {

// Each forward copies the batch in, runs it, and copies the logits, log-probabilities and loss
// back, waiting for them: eval mode only. load_weights() after the device values change.
class DeviceClassifier : public Classifier {
public:
    DeviceClassifier(Context& ctx, Parameters& params, DeviceParameters& device, const RunShape& shape,
                     Precision precision);

    float forward(const float* images_nchw, const int32_t* labels, Mode mode) override;
    const float* logits() const override { return logits_.data(); }
    const float* log_probs() const override { return log_probs_.data(); }
    const RunShape& shape() const override { return shape_; }
    int64_t classes() const override { return classes_; }
    void load_weights() { net_.load_weights(); }

private:
    Context& ctx_;
    RunShape shape_;
    int64_t classes_;
    DenseNet net_;
    DeviceBuffer images_, labels_;
    std::vector<float> logits_, log_probs_;
};

// On one GPU for params, copied there once: later changes to params are not seen. tf32: whether
// fp32 convolutions may run in TF32 (PyTorch's default; it does not concern bf16).
class HostClassifier : public Classifier {
public:
    HostClassifier(Parameters& params, const RunShape& shape, Precision precision, int device, Tf32 tf32);

    float forward(const float* images_nchw, const int32_t* labels, Mode mode) override {
        return net_.forward(images_nchw, labels, mode);
    }
    const float* logits() const override { return net_.logits(); }
    const float* log_probs() const override { return net_.log_probs(); }
    const RunShape& shape() const override { return net_.shape(); }
    int64_t classes() const override { return net_.classes(); }

private:
    Context ctx_;
    DeviceParameters device_;
    DeviceClassifier net_;
};

}  // namespace dn::cuda
