#include "cuda/bench.h"

#include "cuda/optimizer_step.h"
#include "cuda/context.h"
#include "cuda/cuda_check.h"
#include "cuda/densenet.h"
#include "cuda/device.h"
#include "model/init.h"
#include "model/synthetic_batch.h"

#include <chrono>
#include <memory>
#include <stdexcept>

namespace dn::cuda {

namespace {
// The synthetic batch on the device: images (N,C,S,S) and labels (N).
struct DeviceBatch {
    DeviceBuffer images, labels;
};

DeviceBatch device_batch(int64_t N, int64_t C, int64_t S, int64_t num_classes, const Context& ctx) {
    const SyntheticBatch host = synthetic_batch(N, C, S, num_classes);
    DeviceBatch batch{DeviceBuffer(host.images.size() * sizeof(float)),
                      DeviceBuffer(host.labels.size() * sizeof(int32_t))};
    CUDA_CHECK(cudaMemcpyAsync(batch.images.bytes(), host.images.data(), batch.images.size(), cudaMemcpyHostToDevice,
                               ctx.stream()));
    CUDA_CHECK(cudaMemcpyAsync(batch.labels.bytes(), host.labels.data(), batch.labels.size(), cudaMemcpyHostToDevice,
                               ctx.stream()));
    ctx.synchronize();  // the host vectors go out of scope
    return batch;
}

// One step captured into a CUDA graph on the network's stream, ready to launch. A capture that
// fails (an operation a graph cannot hold) ends it, so that the stream is usable again, and throws.
class CapturedStep {
public:
    template <class Step>
    CapturedStep(cudaStream_t stream, Step&& step) : stream_(stream) {
        CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
        cudaGraph_t graph = nullptr;
        try {
            step();
        } catch (...) {
            cudaStreamEndCapture(stream, &graph);
            if (graph) cudaGraphDestroy(graph);
            throw;
        }
        CUDA_CHECK(cudaStreamEndCapture(stream, &graph));
        const cudaError_t made = cudaGraphInstantiate(&exec_, graph, 0);
        cudaGraphDestroy(graph);
        CUDA_CHECK(made);
    }
    ~CapturedStep() {
        if (exec_) cudaGraphExecDestroy(exec_);
    }
    CapturedStep(const CapturedStep&) = delete;
    CapturedStep& operator=(const CapturedStep&) = delete;
    void launch() const { CUDA_CHECK(cudaGraphLaunch(exec_, stream_)); }

private:
    cudaStream_t stream_;
    cudaGraphExec_t exec_ = nullptr;
};

void validate(const BenchSetup& s) {
    if (s.batch_size <= 0 || s.steps <= 0 || s.input_size <= 0 || s.num_classes <= 0)
        throw std::invalid_argument("the GPU bench needs a positive batch size, step count, input size and class count");
    if (s.warmup < 0) throw std::invalid_argument("the GPU bench needs a warm-up count of 0 or more");
    std::string why;
    const int devices = visible_devices(&why);
    if (devices == 0) throw std::invalid_argument("no GPU is visible (" + why + ")");
    if (s.device < 0 || s.device >= devices)
        throw std::invalid_argument("cuda:" + std::to_string(s.device) + " is not a visible GPU (" +
                                    std::to_string(devices) + " visible, from cuda:0)");
}
}  // namespace

BenchResult run_bench(const BenchSetup& setup) {
    validate(setup);
    const bool train = setup.pass == Pass::training;
    Context ctx(setup.device, setup.tf32);
    DeviceBuffer::reset_peak();

    Parameters params(densenet_preset(setup.arch, setup.num_classes));
    init_parameters(params, 0);
    DeviceParameters device(params);
    device.upload(ctx.stream());  // before the network loads its weight copies from it
    const int64_t N = setup.batch_size, S = setup.input_size;
    DenseNet net(ctx, params, device, RunShape{N, S, S}, setup.pass, setup.intermediates, setup.precision);
    const DeviceBatch batch = device_batch(N, params.config().in_channels, S, setup.num_classes, ctx);
    const auto* labels = reinterpret_cast<const int32_t*>(batch.labels.bytes());

    // Adam's moments, zeroed on the network's stream (it does not wait for the default stream).
    DeviceBuffer exp_avg(train ? size_t(params.count()) * sizeof(float) : 0);
    DeviceBuffer exp_avg_sq(exp_avg.size());
    if (train) {
        CUDA_CHECK(cudaMemsetAsync(exp_avg.bytes(), 0, exp_avg.size(), ctx.stream()));
        CUDA_CHECK(cudaMemsetAsync(exp_avg_sq.bytes(), 0, exp_avg_sq.size(), ctx.stream()));
    }
    AdamOptions adam;
    adam.lr = 1e-4;
    int64_t adam_steps = 0;
    auto step = [&] {
        if (!train) {
            net.forward(batch.images.floats(), labels, StepMode::eval);
            return;
        }
        net.forward(batch.images.floats(), labels, StepMode::train);
        net.backward();
        adam_step(device.values(), exp_avg.floats(), exp_avg_sq.floats(), device.grads(), params.count(),
                  adam_step_scalars(adam, ++adam_steps, adam.weight_decay), ctx.stream());
        net.load_weights();
    };

    for (int64_t i = 0; i < setup.warmup; ++i) step();
    std::unique_ptr<CapturedStep> graph;
    if (setup.launch == StepLaunch::cuda_graph) {
        // cuDNN's and cuBLAS's first calls load their kernels and workspaces, which a capture
        // cannot hold: at least one step runs eagerly first.
        if (setup.warmup == 0) step();
        ctx.synchronize();
        graph = std::make_unique<CapturedStep>(ctx.stream(), step);
        graph->launch();  // its first launch uploads it: outside the clock, as a warm-up
    }
    ctx.synchronize();
    const auto start = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < setup.steps; ++i) graph ? graph->launch() : step();
    ctx.synchronize();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

    BenchResult r;
    r.device = device_name(setup.device);
    r.seconds_per_step = seconds / double(setup.steps);
    r.images_per_second = double(N) / r.seconds_per_step;
    r.arena_bytes = net.plan().memory.total_bytes();
    r.engine_bytes = net.device_bytes();
    r.peak_allocated_bytes = DeviceBuffer::peak_bytes();
    return r;
}

}  // namespace dn::cuda
