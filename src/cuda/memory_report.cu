#include "cuda/memory_report.h"

#include "cuda/cuda_check.h"
#include "cuda/device.h"
#include "cuda/host_classifier.h"
#include "cuda/step_engine.h"
#include "model/config.h"

#include <cuda_runtime.h>

#include <functional>
#include <memory>
#include <stdexcept>

namespace dn::cuda {

namespace {
// Whether the engine builds at a batch: every allocation on the card and in pinned host memory,
// and every cuDNN descriptor (cuDNN refuses tensors of 2^31 elements and more, below some
// cards' memory), succeed. A failed build frees what it had; its error is not a sticky one.
bool builds(const std::function<void()>& build, std::string* why = nullptr) {
    try {
        build();
        return true;
    } catch (const std::exception& e) {
        (void)cudaGetLastError();  // clear a failed allocation's error
        if (why) *why = e.what();
        return false;
    }
}

// The largest batch for which fits() holds, from a first guess: doubling past it, then bisecting.
int64_t largest_batch(const std::function<bool(int64_t)>& fits, int64_t guess) {
    constexpr int64_t kLimit = int64_t(1) << 20;
    int64_t good = 0, bad = std::max<int64_t>(guess, 1);
    if (fits(bad)) {
        for (good = bad, bad *= 2; bad <= kLimit && fits(bad); bad *= 2) good = bad;
        if (bad > kLimit) return good;
    }
    while (bad - good > 1) {
        const int64_t mid = good + (bad - good) / 2;
        (fits(mid) ? good : bad) = mid;
    }
    return good;
}

struct TrainingRun {
    Parameters params;
    Adam adam;
    ParameterUpdate update;
    GpuStepEngine engine;

    TrainingRun(const DenseNetConfig& cfg, const RunShape& shape, const MemorySetup& s)
        : params(cfg), adam(params.count(), AdamOptions{}), update(adam, {}),
          engine(params, update, {.shape = shape, .precision = s.precision}, s.device, Tf32::allowed) {}
};
}  // namespace

MemoryReport measure_memory(const MemorySetup& s) {
    const DenseNetConfig cfg = densenet_preset(s.arch, s.num_classes);
    auto shape = [&](int64_t batch) { return RunShape{batch, s.input_size, s.input_size}; };
    MemoryReport r;
    r.device = device_name(s.device);
    CUDA_CHECK(cudaSetDevice(s.device));
    CUDA_CHECK(cudaMemGetInfo(&r.free_bytes, &r.card_bytes));
    const auto measure_training = [&] {
        const size_t before = DeviceBuffer::live_bytes();
        const TrainingRun run(cfg, shape(s.batch_size), s);
        TrainingBytes& t = r.training;
        t.total = DeviceBuffer::live_bytes() - before;
        const DenseNet::Bytes net = run.engine.network().bytes();
        t.arena = net.arena, t.workspace = net.workspace, t.weight_copies = net.weight_copies, t.scratch = net.scratch;
        const Parameters& p = run.params;
        t.parameters = size_t(4 * p.count() + p.running_count()) * sizeof(float);  // values, grads, 2 moments
        t.batches = 2 * size_t(s.batch_size) * (size_t(cfg.in_channels * s.input_size * s.input_size) * sizeof(float) +
                                                 sizeof(int32_t));
        t.tester = t.total - net.total() - t.parameters - t.batches;  // and the clipping's few bytes
    };
    const auto measure_inference = [&] {
        Parameters params(cfg);
        const size_t before = DeviceBuffer::live_bytes();
        const HostClassifier classifier(params, shape(s.batch_size), s.precision, s.device);
        r.inference = DeviceBuffer::live_bytes() - before;
    };
    builds(measure_training, &r.training_error);
    builds(measure_inference, &r.inference_error);
    r.max_batch_training = largest_batch(
        [&](int64_t batch) { return builds([&] { TrainingRun run(cfg, shape(batch), s); }); }, s.batch_size);
    r.max_batch_inference = largest_batch(
        [&](int64_t batch) {
            return builds([&] {
                Parameters params(cfg);
                HostClassifier classifier(params, shape(batch), s.precision, s.device);
            });
        },
        s.batch_size);
    return r;
}

}  // namespace dn::cuda
