#include "cuda/host_classifier.h"

#include "cuda/cuda_check.h"
#include "cuda/loss.h"

#include <stdexcept>

namespace dn::cuda {

namespace {
size_t image_floats(const Parameters& params, const RunShape& s) {
    return size_t(s.batch * params.config().in_channels * s.height * s.width);
}
}  // namespace

DeviceClassifier::DeviceClassifier(Context& ctx, Parameters& params, DeviceParameters& device, const RunShape& shape,
                                   Precision precision)
    : ctx_(ctx), shape_(shape), classes_(params.config().num_classes),
      net_(ctx, params, device, shape, Pass::inference, Intermediates::recompute, precision),
      images_(image_floats(params, shape) * sizeof(float)), labels_(size_t(shape.batch) * sizeof(int32_t)),
      logits_(size_t(shape.batch * classes_)), log_probs_(logits_.size()) {}

float DeviceClassifier::forward(const float* images_nchw, const int32_t* labels, Mode mode) {
    if (mode != Mode::eval) throw std::logic_error("cuda::DeviceClassifier evaluates (Mode::eval) only");
    check_labels(labels, shape_.batch, classes_);
    const cudaStream_t stream = ctx_.stream();
    CUDA_CHECK(cudaMemcpyAsync(images_.bytes(), images_nchw, images_.size(), cudaMemcpyHostToDevice, stream));
    CUDA_CHECK(cudaMemcpyAsync(labels_.bytes(), labels, labels_.size(), cudaMemcpyHostToDevice, stream));
    net_.forward(images_.floats(), reinterpret_cast<const int32_t*>(labels_.bytes()), StepMode::eval);
    const size_t bytes = logits_.size() * sizeof(float);
    CUDA_CHECK(cudaMemcpyAsync(logits_.data(), net_.logits(), bytes, cudaMemcpyDeviceToHost, stream));
    CUDA_CHECK(cudaMemcpyAsync(log_probs_.data(), net_.log_probs(), bytes, cudaMemcpyDeviceToHost, stream));
    return net_.loss();  // waits for the stream, the copies above with it
}

HostClassifier::HostClassifier(Parameters& params, const RunShape& shape, Precision precision, int device, Tf32 tf32)
    : ctx_(device, tf32), device_(params), net_(ctx_, params, device_.upload(ctx_.stream()), shape, precision) {}

}  // namespace dn::cuda
