#include "cuda/step_engine.h"

#include "cuda/cuda_check.h"
#include "cuda/loss.h"

#include <stdexcept>
#include <utility>

namespace dn::cuda {

namespace {
int64_t image_floats(const Parameters& params, const RunShape& s) {
    return s.batch * params.config().in_channels * s.height * s.width;
}

// What this engine cannot do, refused before anything is allocated.
ParameterUpdate& supported(ParameterUpdate& update) {
    const Optimizer& optimizer = update.optimizer();
    if (optimizer.kind() == OptimizerKind::adam && static_cast<const Adam&>(optimizer).options().amsgrad)
        throw std::invalid_argument("the GPU engine's Adam has no amsgrad");
    return update;
}
}  // namespace

GpuStepEngine::GpuStepEngine(Parameters& params, ParameterUpdate& update, const StepEngineSetup& setup, int device,
                             Tf32 tf32, DeviceReplicas replicas)
    : replicas_(std::move(replicas)), params_(params), update_(supported(update)), classes_(params.config().num_classes),
      ctx_(device, tf32), device_(params),
      net_(ctx_, params, device_.upload(ctx_.stream()), setup.shape, Pass::training, setup.intermediates,
           setup.precision),
      tester_(ctx_, params, device_, setup.shape, setup.precision),
      batches_(image_floats(params, setup.shape), setup.shape.batch, ctx_.stream()),
      logits_(size_t(setup.shape.batch * classes_)),
      norm_(params) {
    net_.set_label_smoothing(setup.label_smoothing);
    net_.set_replicas(replicas_);
    for (std::span<float> array : update.optimizer().state_arrays()) state_.emplace_back(array.size_bytes());
    if (WeightAverage* average = update.rules().average) {
        average_ = std::make_unique<DeviceParameters>(average->averaged(), DeviceGradients::none);
        if (setup.tested == TestedWeights::average)
            average_tester_ = std::make_unique<DeviceClassifier>(ctx_, average->averaged(), *average_, setup.shape,
                                                                 setup.precision);
    }
    from_host();
}

GpuStepEngine::~GpuStepEngine() { cudaStreamSynchronize(ctx_.stream()); }  // before the buffers go

float GpuStepEngine::forward(const float* images_nchw, const int32_t* labels) {
    check_labels(labels, net_.plan().shape.batch, classes_);
    const BatchUpload::DeviceBatch batch = batches_.upload(images_nchw, labels);
    net_.forward(batch.images, batch.labels, StepMode::train);
    CUDA_CHECK(cudaMemcpyAsync(logits_.data(), net_.logits(), logits_.size() * sizeof(float), cudaMemcpyDeviceToHost,
                               ctx_.stream()));
    return net_.loss();  // waits for the stream, the logits' copy with it
}

AppliedUpdate GpuStepEngine::backward_and_update() {
    net_.backward();
    batches_.release_after_queued_work();  // the loss's backward read the labels last
    const cudaStream_t stream = ctx_.stream();
    // Each replica's gradients are its share of the global batch's mean loss: their sum is the
    // gradient one process computes, the same bits in every replica.
    if (replicas_.several()) replicas_.collectives->sum(device_.grads(), device_.grads(), device_.count(), stream);
    AppliedUpdate applied;
    applied.learning_rate = update_.schedule_next_step();
    if (update_.rules().max_grad_norm > 0.0) norm_.clip(device_.grads(), update_.rules().max_grad_norm, stream);
    applied.step = update_.optimizer().steps() + 1;
    step_optimizer(applied.step);
    update_.optimizer().set_steps(applied.step);
    if (replicas_.several() && replicas_.stats == BatchNormStats::per_process)
        replicas_.collectives->broadcast(device_.running_stats(), device_.running_count(), 0, stream);
    fold_into_average();
    net_.load_weights();
    return applied;
}

// As WeightAverage::update: the first copies the model, later ones blend it in (the batch counts
// on the host, where the network counts them).
void GpuStepEngine::fold_into_average() {
    WeightAverage* average = update_.rules().average;
    if (!average) return;
    const cudaStream_t stream = ctx_.stream();
    if (average->update_counts(params_)) {
        CUDA_CHECK(cudaMemcpyAsync(average_->values(), device_.values(), size_t(device_.count()) * sizeof(float),
                                   cudaMemcpyDeviceToDevice, stream));
        CUDA_CHECK(cudaMemcpyAsync(average_->running_stats(), device_.running_stats(),
                                   size_t(device_.running_count()) * sizeof(float), cudaMemcpyDeviceToDevice, stream));
        return;
    }
    blend_average(average_->values(), device_.values(), device_.count(), average->keep(), average->take(), stream);
    blend_average(average_->running_stats(), device_.running_stats(), device_.running_count(), average->keep(),
                  average->take(), stream);
}

// One launch per decay range: one in all unless some parameters are excluded from decay.
void GpuStepEngine::step_optimizer(int64_t step) {
    Optimizer& optimizer = update_.optimizer();
    float* values = device_.values();
    const float* grads = device_.grads();
    const cudaStream_t stream = ctx_.stream();
    const bool adam = optimizer.kind() == OptimizerKind::adam;
    for (const DecayRange& r : optimizer.ranges()) {
        const int64_t n = r.end - r.begin;
        if (adam) {
            const AdamOptions& o = static_cast<const Adam&>(optimizer).options();
            adam_step(values + r.begin, state_[0].floats() + r.begin, state_[1].floats() + r.begin, grads + r.begin, n,
                      adam_step_scalars(o, step, r.decayed ? o.weight_decay : 0.0), stream);
        } else {
            const SgdOptions& o = static_cast<const Sgd&>(optimizer).options();
            float* momentum = state_[0].size() ? state_[0].floats() + r.begin : nullptr;
            sgd_step(values + r.begin, momentum, grads + r.begin, n,
                     sgd_step_scalars(o, step, r.decayed ? o.weight_decay : 0.0), stream);
        }
    }
}

Classifier& GpuStepEngine::tester(TestedWeights weights) {
    if (weights == TestedWeights::average && !average_tester_)
        throw std::logic_error("GpuStepEngine::tester: the run does not test an average of its weights");
    DeviceClassifier& net = weights == TestedWeights::average ? *average_tester_ : tester_;
    net.load_weights();
    return net;
}

// The optimizer's state arrays between the host's optimizer and their device copies (kind: the
// direction), on the engine's stream.
void GpuStepEngine::copy_optimizer_state(cudaMemcpyKind kind) {
    const std::vector<std::span<float>> arrays = update_.optimizer().state_arrays();
    for (size_t i = 0; i < arrays.size(); ++i) {
        if (arrays[i].empty()) continue;
        void *host = arrays[i].data(), *device = state_[i].bytes();
        const bool up = kind == cudaMemcpyHostToDevice;
        CUDA_CHECK(cudaMemcpyAsync(up ? device : host, up ? host : device, arrays[i].size_bytes(), kind, ctx_.stream()));
    }
}

void GpuStepEngine::to_host() {
    copy_optimizer_state(cudaMemcpyDeviceToHost);
    if (average_) average_->download(ctx_.stream());
    device_.download(ctx_.stream());  // synchronises, the copies above with it
}

void GpuStepEngine::from_host() {
    copy_optimizer_state(cudaMemcpyHostToDevice);
    if (average_) average_->upload(ctx_.stream());
    device_.upload(ctx_.stream());  // synchronises, the copies above with it
    net_.load_weights();
}

}  // namespace dn::cuda
