#include "ops/profiler.h"

namespace dn {

namespace {
// The innermost open timer of this thread: a closing timer hands its time to it.
thread_local PhaseTimer* open_timer = nullptr;
}  // namespace

const char* phase_name(Phase phase) {
    switch (phase) {
        case Phase::conv_forward: return "conv forward";
        case Phase::conv_backward_data: return "conv backward-data";
        case Phase::conv_backward_weights: return "conv backward-weights";
        case Phase::weight_reorder: return "conv weight reorders";
        case Phase::bn_stats: return "BN batch statistics";
        case Phase::bn_relu_forward: return "BN+ReLU forward (fused)";
        case Phase::bn_relu_backward: return "BN+ReLU backward (fused)";
        case Phase::copy: return "concatenation / copies";
        case Phase::pooling: return "pooling";
        case Phase::classifier_loss: return "classifier + loss";
        case Phase::optimizer: return "optimizer";
    }
    return "?";
}

bool phase_is_compute(Phase phase) {
    return phase == Phase::conv_forward || phase == Phase::conv_backward_data ||
           phase == Phase::conv_backward_weights || phase == Phase::classifier_loss;
}

void Profiler::add(Phase phase, double seconds, double flops, double bytes) {
    PhaseTotals& t = totals_[size_t(phase)];
    t.seconds += seconds;
    t.flops += flops;
    t.bytes += bytes;
    t.calls += 1;
}

double Profiler::total_seconds() const {
    double sum = 0.0;
    for (const auto& t : totals_) sum += t.seconds;
    return sum;
}

void PhaseTimer::start(Phase phase, double flops, double bytes) {
    profiler_ = detail::active_profiler;
    phase_ = phase;
    flops_ = flops;
    bytes_ = bytes;
    parent_ = open_timer;
    open_timer = this;
    start_ = Clock::now();
}

void PhaseTimer::stop() {
    const double elapsed = std::chrono::duration<double>(Clock::now() - start_).count();
    profiler_->add(phase_, elapsed - child_seconds_, flops_, bytes_);
    if (parent_) parent_->child_seconds_ += elapsed;
    open_timer = parent_;
}

}  // namespace dn
