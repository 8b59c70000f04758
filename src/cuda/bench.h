// defines: cuda::BenchSetup, cuda::BenchResult, cuda::run_bench (the GPU engine's training or
//          inference steps on synthetic images, timed as `densenet bench` times the CPU engine's);
//          no CUDA header, so that the program's bench command can name them in any build
#pragma once
#include "cuda/tf32.h"
#include "model/activation_plan.h"  // Intermediates, Precision
#include "ops/pass.h"

#include <cstddef>
#include <cstdint>
#include <string>

namespace dn::cuda {

// How the timed steps reach the GPU: eager, op by op from the host as training runs them, or
// cuda_graph: the step captured once into a CUDA graph after the warm-up and the graph launched
// each step, which measures what graphs would save in launch overhead (the training run does not
// use them yet). The graph replays the captured step's own scalars (Adam's bias corrections) and
// leaves the host's batch counts as they were, which does not change its time; its peak device
// memory leaves out what the graph itself holds.
enum class StepLaunch { eager, cuda_graph };

struct BenchSetup {
    std::string arch = "densenet121";
    int64_t num_classes = 10;
    int64_t input_size = 224;
    int64_t batch_size = 32;
    int64_t steps = 3;
    int64_t warmup = 1;
    Pass pass = Pass::training;  // training: forward, NLL, backward, Adam (lr 1e-4); inference: eval forward
    Intermediates intermediates = Intermediates::recompute;
    Precision precision = Precision::fp32;  // bf16: the CPU engine's mixed precision, on tensor cores
    Tf32 tf32 = Tf32::allowed;              // fp32's convolutions
    int device = 0;
    StepLaunch launch = StepLaunch::eager;
};

struct BenchResult {
    std::string device;  // cuda::device_name
    double seconds_per_step = 0.0;
    double images_per_second = 0.0;
    size_t arena_bytes = 0;   // the activation plan's one arena
    size_t engine_bytes = 0;  // the network's device buffers: arena, workspaces, weight copies
    // The most bytes live in device buffers at once during the run: the parameters, their gradients
    // and Adam's state, the images, and the network's (torch.cuda.max_memory_allocated's measure).
    size_t peak_allocated_bytes = 0;
};

// Builds the network on `setup.device`, runs the warm-up steps, then times the timed ones (the
// clock stops when the GPU has finished them). Images uniform in [0, 1) and uniform labels, as
// ../shared/peer/pytorch_bench.py's, on the device before the clock starts.
BenchResult run_bench(const BenchSetup& setup);

}  // namespace dn::cuda
