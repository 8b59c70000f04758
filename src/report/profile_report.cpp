#include "report/profile_report.h"

#include <cstdio>

namespace dn {

namespace {
struct Row {
    const char* name;
    double calls, seconds, flops, bytes;  // per step
    bool compute;
};

Row row_of(const Profiler& profiler, Phase phase, int64_t steps) {
    const PhaseTotals& t = profiler.totals(phase);
    const double s = double(steps);
    return {phase_name(phase), double(t.calls) / s, t.seconds / s, t.flops / s, t.bytes / s, phase_is_compute(phase)};
}

// Compute phases are held against the FMA peak, the memory-bound ones against the copy bandwidth.
double fraction_of_peak(const Row& r, const MachinePeak& peak) {
    if (r.seconds <= 0.0) return 0.0;
    return r.compute ? r.flops / r.seconds / peak.flops_per_second : r.bytes / r.seconds / peak.bytes_per_second;
}

std::string line(const char* format, auto... args) {
    char buffer[256];
    std::snprintf(buffer, sizeof buffer, format, args...);
    return buffer;
}
}  // namespace

std::string profile_table(const Profiler& profiler, int64_t steps, double step_seconds, const MachinePeak& peak) {
    std::string out;
    out += line("peak: %.1f GFLOP/s fp32 (%s)\n", peak.flops_per_second / 1e9, peak.flops_how.c_str());
    out += line("      %.1f GB/s memory (%s)\n", peak.bytes_per_second / 1e9, peak.bytes_how.c_str());
    out += line("%-28s %7s %9s %7s %9s %8s %8s\n", "phase, per step", "calls", "seconds", "share", "GFLOP/s", "GB/s",
                "of peak");
    const double accounted = profiler.total_seconds() / double(steps);
    for (size_t p = 0; p < kPhaseCount; ++p) {
        const Row r = row_of(profiler, Phase(p), steps);
        const double gflops = r.seconds > 0.0 ? r.flops / r.seconds / 1e9 : 0.0;
        const double gbytes = r.seconds > 0.0 ? r.bytes / r.seconds / 1e9 : 0.0;
        out += line("%-28s %7.0f %9.4f %6.1f%% ", r.name, r.calls, r.seconds, 100.0 * r.seconds / step_seconds);
        out += r.flops > 0.0 ? line("%9.1f ", gflops) : line("%9s ", "-");
        out += r.bytes > 0.0 ? line("%8.1f ", gbytes) : line("%8s ", "-");
        out += r.flops > 0.0 || r.bytes > 0.0
                   ? line("%6.1f%% %s\n", 100.0 * fraction_of_peak(r, peak), r.compute ? "fma" : "mem")
                   : std::string("-\n");
    }
    out += line("%-28s %7s %9.4f %6.1f%%\n", "sum of phases", "", accounted, 100.0 * accounted / step_seconds);
    out += line("%-28s %7s %9.4f %6.1f%%\n", "unaccounted (the rest)", "", step_seconds - accounted,
                100.0 * (step_seconds - accounted) / step_seconds);
    out += line("%-28s %7s %9.4f %6.1f%%\n", "measured step", "", step_seconds, 100.0);
    out += "ReLU has no row of its own: it is fused into the BN+ReLU passes (forward: max(0, .) on the normalised\n"
           "value; backward: the mask from the recomputed pre-activation). Recompute mode re-runs norm2/relu2\n"
           "in backward (in the forward row) and norm1/relu1 inside norm1's backward pass (in the backward row).\n"
           "Convolution GFLOP/s count a direct convolution's FLOPs. In fp32 DenseNet's wide 3x3 convolutions\n"
           "run with Winograd (on a CPU with AVX-512; in inference on any), which needs fewer (their rows\n"
           "include its layout changes or tile transforms): those rows can pass the FMA peak.\n";
    return out;
}

nlohmann::ordered_json profile_json(const Profiler& profiler, int64_t steps, double step_seconds,
                                    const MachinePeak& peak) {
    nlohmann::ordered_json phases = nlohmann::ordered_json::array();
    for (size_t p = 0; p < kPhaseCount; ++p) {
        const Row r = row_of(profiler, Phase(p), steps);
        phases.push_back({{"phase", r.name},
                          {"calls_per_step", r.calls},
                          {"seconds_per_step", r.seconds},
                          {"share", r.seconds / step_seconds},
                          {"flops_per_step", r.flops},
                          {"bytes_per_step", r.bytes},
                          {"fraction_of_peak", fraction_of_peak(r, peak)},
                          {"peak_kind", r.compute ? "fma" : "memory"}});
    }
    return {{"phases", phases},
            {"unaccounted_seconds_per_step", step_seconds - profiler.total_seconds() / double(steps)},
            {"peak_flops_per_second", peak.flops_per_second},
            {"peak_bytes_per_second", peak.bytes_per_second}};
}

}  // namespace dn
