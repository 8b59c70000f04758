// defines: DeviceKind, DeviceChoice, choose_device (what --device names: the CPU or one GPU),
//          precision_on, inference_network (the network eval and predict run there),
//          training_engine (the engine train runs there), GpuEngine, gpu_engine (the GPU engine,
//          loaded when a command first asks for it)
#pragma once
#include "cuda/bench.h"
#include "cuda/memory_report.h"
#include "model/classifier.h"
#include "model/parameters.h"
#include "model/replica_sync.h"  // BatchNormStats
#include "ops/precision.h"
#include "train/step_engine.h"

#include <memory>
#include <string>

namespace dn {

class DnnlContext;   // the CPU engine's (ops/dnnl_context.h), which the GPU engine's library need not see
class Communicator;  // dist/communicator.h
class DataParallel;  // dist/data_parallel.h, the CPU engine's replicas

// What the program calls in the GPU engine (src/cuda). Where the program is built with it, the
// engine is a shared library beside the program (libdensenet_gpu.so, app/gpu/engine.cpp) that
// gpu_engine() loads on first use: the CUDA libraries it links (cuDNN, cuBLAS: hundreds of MB
// mapped, 150 MB resident) are loaded only by runs that use a GPU, and the program runs on
// machines that have none of them.
struct GpuEngine {
    std::string (*device_name)(int index);
    cuda::BenchResult (*run_bench)(const cuda::BenchSetup& setup);
    // An inference network for params on GPU `device`, batch by batch over host memory
    // (cuda::HostClassifier): what eval and predict run there.
    std::unique_ptr<Classifier> (*make_classifier)(Parameters& params, const RunShape& shape, Precision precision,
                                                   int device);
    // The training engine for params on GPU `device` (cuda::GpuStepEngine), stepping with update,
    // as one of comm's processes (each on a GPU of its own, joined by NCCL where there are
    // several), on its shard of global_batch.
    std::unique_ptr<StepEngine> (*make_step_engine)(Parameters& params, ParameterUpdate& update,
                                                    const StepEngineSetup& setup, int device, cuda::Tf32 tf32,
                                                    Communicator& comm, int64_t global_batch, BatchNormStats stats);
    cuda::MemoryReport (*measure_memory)(const cuda::MemorySetup& setup);
    bool has_nccl;  // whether it was built with NCCL, which several processes on GPUs need
};

// The GPUs this process can use, asked of the NVIDIA driver (libcuda.so.1) without loading the
// engine: 0 where there is no driver, no GPU, CUDA_VISIBLE_DEVICES hides them, or the program has
// no GPU engine. Never throws.
int visible_gpus();

// Visible GPU `index`'s PCI bus id ("0000:3B:00.0"), asked of the driver the same way: what tells
// two processes on a machine that they were shown the same GPU. Empty where the driver can't say.
std::string gpu_bus_id(int index);

// The engine, loaded on the first call, or nullptr where this program has none or it did not
// load; then why_no_gpu_engine() says why, in words for an error message.
const GpuEngine* gpu_engine();
std::string why_no_gpu_engine();

enum class DeviceKind { cpu, cuda };

struct DeviceChoice {
    DeviceKind kind = DeviceKind::cpu;
    int index = 0;            // the GPU's, with DeviceKind::cuda
    std::string description;  // "the CPU", "cuda:0, NVIDIA H200 (sm_90, 139.8 GiB)"
};

// --device: "cpu", "cuda" (the first GPU), "cuda:N", or "auto", as the lecture's notebook chooses:
// a GPU when one is visible (and the GPU engine loads), else the CPU, saying why. Throws
// std::invalid_argument, one line, for a GPU this program cannot use (none visible, none with
// that number, or no GPU engine).
DeviceChoice choose_device(const std::string& flag);

// --device for one of a data-parallel job's processes (mpirun): on GPUs, each process takes a GPU
// of its own, the one numbered by its place among the processes on its machine (node_rank of
// node_size), or the one GPU it is shown (a launcher's CUDA_VISIBLE_DEVICES naming one), and NCCL
// joins them. "cuda" asks for that, "auto" takes it where it can be had (else the CPU, saying
// why), "cuda:N" is refused. Throws std::invalid_argument, one line, as choose_device, and where
// the machine has fewer GPUs than processes or the engine lacks NCCL. What one process chose is
// only its own: the job's processes must then agree (train's agreed_device), since a machine
// without GPUs, or two processes shown the same GPU, is seen only across the job.
DeviceChoice choose_device_for_job(const std::string& flag, int node_rank, int node_size);

// The precision to run on `device`: as asked on a GPU (the engine is built for Hopper, whose
// tensor cores multiply bf16), usable_precision's on the CPU (fp32, saying so, without AVX512-BF16).
Precision precision_on(const DeviceChoice& device, Precision requested);

// The inference network eval and predict run: the CPU engine's DenseNet (its weights loaded; ctx
// must outlive it) or the GPU engine's cuda::HostClassifier, for params as they are now.
std::unique_ptr<Classifier> inference_network(const DeviceChoice& device, DnnlContext& ctx, Parameters& params,
                                              const RunShape& shape, Precision precision);

// The engine `densenet train` runs on `device`: the CPU's (CpuStepEngine, with the job's replicas)
// or a GPU's (one process; tf32 for its fp32 convolutions).
std::unique_ptr<StepEngine> training_engine(const DeviceChoice& device, Parameters& params, ParameterUpdate& update,
                                            DataParallel& replicas, const StepEngineSetup& setup, cuda::Tf32 tf32);

}  // namespace dn
