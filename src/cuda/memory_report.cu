#include "cuda/memory_report.h"

#include "cuda/cuda_check.h"
#include "cuda/device.h"
#include "cuda/host_classifier.h"
#include "cuda/step_engine.h"
#include "model/config.h"
#include "train/weight_average.h"

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

// What `train --device cuda` builds: with Adam, and with a weight average where the run keeps one
// (--ema-decay; tested: --test-ema too).
enum class AverageUse { none, kept, kept_and_tested };

struct TrainingRun {
    Parameters params;
    Adam adam;
    std::unique_ptr<WeightAverage> average;
    ParameterUpdate update;
    GpuStepEngine engine;

    TrainingRun(const DenseNetConfig& cfg, const RunShape& shape, const MemorySetup& s,
                AverageUse use = AverageUse::none)
        : params(cfg), adam(params.count(), AdamOptions{}),
          average(use == AverageUse::none ? nullptr : std::make_unique<WeightAverage>(cfg, 0.999)),
          update(adam, {.average = average.get()}),
          engine(params, update,
                 {.shape = shape,
                  .precision = s.precision,
                  .tested = use == AverageUse::kept_and_tested ? TestedWeights::average : TestedWeights::trained},
                 s.device, Tf32::allowed) {}
};

// The device bytes a training run allocates.
size_t training_bytes(const DenseNetConfig& cfg, const RunShape& shape, const MemorySetup& s, AverageUse use) {
    const size_t before = DeviceBuffer::live_bytes();
    const TrainingRun run(cfg, shape, s, use);
    return DeviceBuffer::live_bytes() - before;
}
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
    // Each with the run above freed: the differences are the average's alone.
    const auto measure_average = [&] {
        TrainingBytes& t = r.training;
        const size_t kept = training_bytes(cfg, shape(s.batch_size), s, AverageUse::kept);
        const size_t tested = training_bytes(cfg, shape(s.batch_size), s, AverageUse::kept_and_tested);
        t.average = kept - t.total, t.average_tester = tested - kept;
    };
    const auto measure_inference = [&] {
        Parameters params(cfg);
        const size_t before = DeviceBuffer::live_bytes();
        const HostClassifier classifier(params, shape(s.batch_size), s.precision, s.device, Tf32::allowed);
        r.inference = DeviceBuffer::live_bytes() - before;
    };
    if (builds(measure_training, &r.training_error)) builds(measure_average);
    builds(measure_inference, &r.inference_error);
    r.max_batch_training = largest_batch(
        [&](int64_t batch) { return builds([&] { TrainingRun run(cfg, shape(batch), s); }); }, s.batch_size);
    r.max_batch_inference = largest_batch(
        [&](int64_t batch) {
            return builds([&] {
                Parameters params(cfg);
                HostClassifier classifier(params, shape(batch), s.precision, s.device, Tf32::allowed);
            });
        },
        s.batch_size);
    return r;
}

}  // namespace dn::cuda
