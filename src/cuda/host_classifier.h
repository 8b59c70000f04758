// defines: cuda::HostClassifier (the GPU DenseNet as a Classifier over host memory: evaluation
//          and prediction on a GPU, batch by batch, with the CPU engine's interface)
#pragma once
#include "cuda/context.h"
#include "cuda/densenet.h"
#include "model/classifier.h"

#include <vector>

namespace dn::cuda {

// An inference network on one GPU for params (copied there once: later changes to params are
// not seen). Each forward copies the batch in, runs it, and copies the logits, log-probabilities
// and loss back, waiting for them: eval mode only.
class HostClassifier : public Classifier {
public:
    HostClassifier(Parameters& params, const RunShape& shape, Precision precision, int device);

    float forward(const float* images_nchw, const int32_t* labels, Mode mode) override;
    const float* logits() const override { return logits_.data(); }
    const float* log_probs() const override { return log_probs_.data(); }
    const RunShape& shape() const override { return shape_; }
    int64_t classes() const override { return classes_; }

private:
    RunShape shape_;
    int64_t classes_;
    Context ctx_;
    DeviceParameters device_;
    DenseNet net_;
    DeviceBuffer images_, labels_;
    std::vector<float> logits_, log_probs_;
};

}  // namespace dn::cuda
