// defines: gpu_bench_summary, gpu_bench_json (what `densenet bench --device cuda` and
//          densenet-gpu-bench print of a cuda::run_bench), gpu_memory_json (what `densenet
//          complexity --device cuda` and densenet-gpu-bench --mode memory report of cuda::measure_memory)
#pragma once
#include "cuda/bench.h"
#include "cuda/memory_report.h"

#include <nlohmann/json.hpp>

#include <string>

namespace dn {

// Two lines: what ran, where, and its images/s, step time and peak device memory.
std::string gpu_bench_summary(const cuda::BenchSetup& setup, const cuda::BenchResult& result);
// The same, as `densenet bench --json` reports a CPU run (with the device's fields in place of threads and RSS).
nlohmann::ordered_json gpu_bench_json(const cuda::BenchSetup& setup, const cuda::BenchResult& result);
// Every figure of the report, in bytes.
nlohmann::ordered_json gpu_memory_json(const cuda::MemoryReport& report);

}  // namespace dn
