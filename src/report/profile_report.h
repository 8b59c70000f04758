// defines: profile_table, profile_json (a profiled run's phases, per step, against the machine's peak)
#pragma once
#include "ops/profiler.h"
#include "report/machine_peak.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>

namespace dn {

// `profiler` holds `steps` steps whose measured wall time was `step_seconds` each. Every figure is
// per step; what no phase accounts for is shown as the remainder, so the rows add up to the step.
std::string profile_table(const Profiler& profiler, int64_t steps, double step_seconds, const MachinePeak& peak);
nlohmann::ordered_json profile_json(const Profiler& profiler, int64_t steps, double step_seconds,
                                    const MachinePeak& peak);

}  // namespace dn
