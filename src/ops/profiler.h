// defines: Phase, phase_name, phase_is_compute, PhaseTotals, Profiler, ProfilerScope, PhaseTimer
//
// Where a step's time goes. Every op opens a PhaseTimer for the work it does; the timer is one
// branch on a null pointer unless a ProfilerScope has installed a Profiler on this thread, so the
// instrument stays in the code at no cost. Timers nest and count exclusive time: an inner timer's
// time is taken out of the outer one, so the phases add up to the profiled work and never overlap.
// oneDNN's CPU stream runs each primitive to completion inside execute(), so wall time around a
// call is that primitive's time.
#pragma once
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>

namespace dn {

enum class Phase {
    conv_forward,
    conv_backward_data,
    conv_backward_weights,
    weight_reorder,     // OIHW <-> oneDNN's weight layout, after each update and for each dW
    bn_stats,           // batch mean/variance of a channel when produced; running statistics
    bn_relu_forward,    // normalise + ReLU, one fused pass
    bn_relu_backward,   // ReLU mask + normalisation backward, fused
    copy,               // the "concatenation": channels into and out of block buffers; input layout
    pooling,            // max, average and global average pooling
    classifier_loss,    // the linear layer and log_softmax + NLL
    optimizer,
};
inline constexpr size_t kPhaseCount = size_t(Phase::optimizer) + 1;

const char* phase_name(Phase phase);
// Compute phases are measured against the FMA peak (FLOPs), the others against memory bandwidth (bytes).
bool phase_is_compute(Phase phase);

struct PhaseTotals {
    double seconds = 0.0;
    double flops = 0.0;  // useful floating-point operations (an FMA is 2)
    double bytes = 0.0;  // bytes the kernel must read and write
    int64_t calls = 0;
};

class Profiler {
public:
    void add(Phase phase, double seconds, double flops, double bytes);
    const PhaseTotals& totals(Phase phase) const { return totals_[size_t(phase)]; }
    double total_seconds() const;
    void clear() { totals_ = {}; }

private:
    std::array<PhaseTotals, kPhaseCount> totals_{};
};

namespace detail {
inline thread_local Profiler* active_profiler = nullptr;
}  // namespace detail

// Installs `profiler` for the ops this thread runs, for as long as the scope lives.
class ProfilerScope {
public:
    explicit ProfilerScope(Profiler& profiler) : previous_(detail::active_profiler) {
        detail::active_profiler = &profiler;
    }
    ~ProfilerScope() { detail::active_profiler = previous_; }
    ProfilerScope(const ProfilerScope&) = delete;
    ProfilerScope& operator=(const ProfilerScope&) = delete;

private:
    Profiler* previous_;
};

// Times the rest of the enclosing scope as `phase`, with the work it does.
class PhaseTimer {
public:
    explicit PhaseTimer(Phase phase, double flops = 0.0, double bytes = 0.0) {
        if (detail::active_profiler) start(phase, flops, bytes);
    }
    ~PhaseTimer() {
        if (profiler_) stop();
    }
    PhaseTimer(const PhaseTimer&) = delete;
    PhaseTimer& operator=(const PhaseTimer&) = delete;

private:
    using Clock = std::chrono::steady_clock;
    void start(Phase phase, double flops, double bytes);
    void stop();

    Profiler* profiler_ = nullptr;
    PhaseTimer* parent_ = nullptr;
    Phase phase_{};
    double flops_ = 0.0, bytes_ = 0.0, child_seconds_ = 0.0;
    Clock::time_point start_;
};

}  // namespace dn
