#include "app/gpu/bench_report.h"

#include <cstdio>

namespace dn {

namespace {
const char* mode_name(const cuda::BenchSetup& s) { return s.pass == Pass::training ? "train" : "infer"; }
const char* memory_name(const cuda::BenchSetup& s) {
    return s.intermediates == Intermediates::keep ? "keep" : "recompute";
}
const char* arithmetic(const cuda::BenchSetup& s) {
    if (s.precision == Precision::bf16) return "bf16 (bf16 convolutions, f32 accumulation)";
    return s.tf32 == cuda::Tf32::allowed ? "fp32 (TF32 convolutions)" : "fp32";
}
}  // namespace

std::string gpu_bench_summary(const cuda::BenchSetup& s, const cuda::BenchResult& r) {
    const bool train = s.pass == Pass::training;
    char text[1024];
    std::snprintf(text, sizeof text,
                  "%s %s %s, %ldx%ld, batch %ld, on cuda:%d, %s%s%s%s: %ld timed steps after %ld warm-up\n"
                  "  %.1f images/s, %.5f s per step, peak device memory %.1f MB allocated (activation arena %.1f MB, "
                  "network %.1f MB)\n",
                  s.arch.c_str(), mode_name(s), arithmetic(s),
                  long(s.input_size), long(s.input_size), long(s.batch_size), s.device, r.device.c_str(),
                  train ? ", memory " : "", train ? memory_name(s) : "",
                  s.launch == cuda::StepLaunch::cuda_graph ? ", one CUDA graph a step" : "", long(s.steps),
                  long(s.warmup),
                  r.images_per_second, r.seconds_per_step, double(r.peak_allocated_bytes) / 1e6,
                  double(r.arena_bytes) / 1e6, double(r.engine_bytes) / 1e6);
    return text;
}

nlohmann::ordered_json gpu_bench_json(const cuda::BenchSetup& s, const cuda::BenchResult& r) {
    nlohmann::ordered_json j{{"peer", "densenet.cpp"},
                             {"arch", s.arch},
                             {"mode", mode_name(s)},
                             {"precision", s.precision == Precision::bf16 ? "bf16" : "fp32"},
                             {"tf32", s.precision == Precision::fp32 && s.tf32 == cuda::Tf32::allowed},
                             {"device", "cuda:" + std::to_string(s.device)},
                             {"device_name", r.device},
                             {"input_size", s.input_size},
                             {"batch_size", s.batch_size},
                             {"num_classes", s.num_classes},
                             {"steps", s.steps},
                             {"warmup", s.warmup},
                             {"seconds_per_step", r.seconds_per_step},
                             {"images_per_second", r.images_per_second},
                             {"peak_device_bytes", r.peak_allocated_bytes},
                             {"arena_bytes", r.arena_bytes}};
    if (s.pass == Pass::training) j["memory"] = memory_name(s);
    j["launch"] = s.launch == cuda::StepLaunch::cuda_graph ? "cuda-graph" : "eager";
    return j;
}

nlohmann::ordered_json gpu_memory_json(const cuda::MemoryReport& g) {
    const cuda::TrainingBytes& t = g.training;
    return {{"device", g.device},
            {"card_bytes", g.card_bytes},
            {"free_bytes", g.free_bytes},
            {"training", {{"arena", t.arena}, {"workspace", t.workspace}, {"weight_copies", t.weight_copies},
                          {"scratch", t.scratch}, {"parameters", t.parameters}, {"batches", t.batches},
                          {"tester", t.tester}, {"total", t.total}, {"average", t.average},
                          {"average_tester", t.average_tester}}},
            {"inference_total", g.inference},
            {"training_error", g.training_error},
            {"inference_error", g.inference_error},
            {"max_batch_training", g.max_batch_training},
            {"max_batch_inference", g.max_batch_inference}};
}

}  // namespace dn
