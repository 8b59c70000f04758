#include "app/device_choice.h"

#include "dist/data_parallel.h"
#include "model/densenet.h"
#include "ops/dnnl_context.h"
#include "train/cpu_step_engine.h"

#include <charconv>
#include <stdexcept>

namespace dn {

namespace {
DeviceChoice gpu(const GpuEngine& engine, int index) {
    return {DeviceKind::cuda, index, "cuda:" + std::to_string(index) + ", " + engine.device_name(index)};
}

// "cuda" is GPU 0; "cuda:N" GPU N; anything else is not a GPU's name (-1).
int gpu_index(const std::string& flag) {
    if (flag == "cuda") return 0;
    if (flag.rfind("cuda:", 0) != 0) return -1;
    int index = -1;
    const char *first = flag.data() + 5, *last = flag.data() + flag.size();
    const auto [end, error] = std::from_chars(first, last, index);
    return error == std::errc() && end == last && first != last ? index : -1;
}
}  // namespace

DeviceChoice choose_device(const std::string& flag) {
    if (flag == "cpu") return {DeviceKind::cpu, 0, "the CPU"};
    const int index = flag == "auto" ? 0 : gpu_index(flag);
    if (index < 0) throw std::invalid_argument("--device must be auto, cpu, cuda or cuda:N, not '" + flag + "'");
    const int count = visible_gpus();
    if (flag == "auto" && count == 0) return {DeviceKind::cpu, 0, "the CPU (no GPU is visible)"};
    const std::string cpu_instead =
        flag == "auto" ? "; --device cpu runs on the CPU without asking" : "; --device cpu runs on the CPU";
    if (count == 0)
        throw std::invalid_argument("--device " + flag + ": no GPU is visible (no driver, no GPU, or CUDA_VISIBLE_DEVICES "
                                    "hides them)" + cpu_instead);
    if (index >= count)
        throw std::invalid_argument("--device " + flag + ": there is no GPU " + std::to_string(index) + " (" +
                                    std::to_string(count) + " visible, from cuda:0)");
    const GpuEngine* engine = gpu_engine();
    if (!engine && flag == "auto") return {DeviceKind::cpu, 0, "the CPU (" + why_no_gpu_engine() + ")"};
    if (!engine) throw std::invalid_argument("--device " + flag + ": " + why_no_gpu_engine() + cpu_instead);
    return gpu(*engine, index);
}

DeviceChoice choose_device_for_job(const std::string& flag, int node_rank, int node_size) {
    if (flag.rfind("cuda:", 0) == 0)
        throw std::invalid_argument("--device " + flag + ": with several processes each takes a GPU of its own, by its "
                                    "place on its machine; give --device cuda (or auto, or cpu)");
    const DeviceChoice first = choose_device(flag);
    if (first.kind == DeviceKind::cpu) return first;
    const GpuEngine& engine = *gpu_engine();  // choose_device returned a GPU: the engine loaded
    // One visible GPU is each process's own where a launcher shows each only its GPU
    // (CUDA_VISIBLE_DEVICES per process, as Slurm's --gpus-per-task=1 sets it); where it is one
    // GPU shown to all, the job's processes find that out together (train's agreed_device).
    const int index = visible_gpus() == 1 ? 0 : node_rank;
    std::string lacking;
    if (!engine.has_nccl)
        lacking = "the GPU engine was built without NCCL, which several processes on GPUs need";
    else if (index >= visible_gpus())
        lacking = std::to_string(node_size) + " processes on this machine and " + std::to_string(visible_gpus()) +
                  " GPUs: each process needs a GPU of its own";
    if (lacking.empty()) return gpu(engine, index);
    if (flag == "auto") return {DeviceKind::cpu, 0, "the CPU (" + lacking + ")"};
    throw std::invalid_argument("--device cuda: " + lacking + "; --device cpu runs on the CPU");
}

Precision precision_on(const DeviceChoice& device, Precision requested) {
    return device.kind == DeviceKind::cuda ? requested : usable_precision(requested);
}

std::unique_ptr<Classifier> inference_network(const DeviceChoice& device, DnnlContext& ctx, Parameters& params,
                                              const RunShape& shape, Precision precision) {
    if (device.kind == DeviceKind::cuda) return gpu_engine()->make_classifier(params, shape, precision, device.index);
    auto net = std::make_unique<DenseNet>(ctx, params, shape, Pass::inference, Intermediates::recompute, precision);
    net->load_weights();
    return net;
}

std::unique_ptr<StepEngine> training_engine(const DeviceChoice& device, Parameters& params, ParameterUpdate& update,
                                            DataParallel& replicas, const StepEngineSetup& setup, cuda::Tf32 tf32) {
    if (device.kind == DeviceKind::cuda)
        return gpu_engine()->make_step_engine(params, update, setup, device.index, tf32, replicas.communicator(),
                                              replicas.global_batch(), replicas.batch_norm_stats());
    return std::make_unique<CpuStepEngine>(params, update, replicas, setup);
}

}  // namespace dn
