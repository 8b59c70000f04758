// densenet-gpu-bench: `densenet bench --device cuda`, alone, for GPU machines that build only the
// GPU engine (DENSENET_CUDA_ONLY: scripts/gpu_check.sh), where the densenet program, which needs
// the CPU engine's libraries, cannot be built.
#include "app/gpu/bench_report.h"
#include "cuda/bench.h"
#include "cuda/memory_report.h"

#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>

int main(int argc, char** argv) {
    dn::cuda::BenchSetup setup;
    std::string mode = "train", memory = "recompute", precision = "fp32", launch = "eager";
    bool no_tf32 = false, json = false;
    CLI::App app("Time the GPU engine's training or inference steps on synthetic images (densenet bench --device cuda)");
    app.add_option("--arch", setup.arch, "densenet121, densenet161, densenet169 or densenet201")->capture_default_str();
    app.add_option("--num-classes", setup.num_classes, "classifier outputs")->capture_default_str();
    app.add_option("--input-size", setup.input_size, "square images of this size")->capture_default_str();
    app.add_option("--batch-size", setup.batch_size, "images per step")->capture_default_str();
    app.add_option("--steps", setup.steps, "timed steps")->capture_default_str();
    app.add_option("--warmup", setup.warmup, "untimed steps first")->capture_default_str();
    app.add_option("--mode", mode,
                   "train (forward, NLL, backward, Adam), infer (forward in eval mode), or memory: what the engines "
                   "allocate at this batch and the largest batches that allocate (complexity --device cuda)")
        ->check(CLI::IsMember({"train", "infer", "memory"}))
        ->capture_default_str();
    app.add_option("--memory", memory, "recompute the BN-ReLU outputs in backward (memory-efficient) or keep them")
        ->check(CLI::IsMember({"recompute", "keep"}))
        ->capture_default_str();
    app.add_option("--precision", precision, "fp32, or bf16: bf16 convolutions and activations, f32 accumulation")
        ->check(CLI::IsMember({"fp32", "bf16"}))
        ->capture_default_str();
    app.add_option("--device", setup.device, "the GPU's number")->capture_default_str();
    app.add_option("--launch", launch,
                   "eager: each step's ops launched from the host, as training runs them; cuda-graph: the step "
                   "captured once into a CUDA graph and the graph launched (what graphs would save)")
        ->check(CLI::IsMember({"eager", "cuda-graph"}))
        ->capture_default_str();
    app.add_flag("--no-tf32", no_tf32, "full fp32 convolutions, not PyTorch's default TF32");
    app.add_flag("--json", json, "end with one line of JSON");
    CLI11_PARSE(app, argc, argv);
    setup.pass = mode == "train" ? dn::Pass::training : dn::Pass::inference;
    setup.intermediates = memory == "keep" ? dn::Intermediates::keep : dn::Intermediates::recompute;
    setup.tf32 = no_tf32 ? dn::cuda::Tf32::off : dn::cuda::Tf32::allowed;
    setup.precision = precision == "bf16" ? dn::Precision::bf16 : dn::Precision::fp32;
    setup.launch = launch == "cuda-graph" ? dn::cuda::StepLaunch::cuda_graph : dn::cuda::StepLaunch::eager;
    try {
        if (mode == "memory") {
            const dn::cuda::MemoryReport report = dn::cuda::measure_memory(
                {.arch = setup.arch, .num_classes = setup.num_classes, .input_size = setup.input_size,
                 .batch_size = setup.batch_size, .precision = setup.precision, .device = setup.device});
            std::printf("%s\n", dn::gpu_memory_json(report).dump().c_str());
            return 0;
        }
        const dn::cuda::BenchResult result = dn::cuda::run_bench(setup);
        std::printf("%s", dn::gpu_bench_summary(setup, result).c_str());
        if (json) std::printf("%s\n", dn::gpu_bench_json(setup, result).dump().c_str());
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
    return 0;
}
