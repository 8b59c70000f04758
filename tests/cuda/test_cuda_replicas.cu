// Data-parallel training on GPUs, the engine's side: three replicas of the GPU engine
// (GpuStepEngine with DeviceReplicas), each on its shard of every batch (3, 3 and 2 of 8 images),
// against one engine on the whole batch, with TF32 off. As check_data_parallel.py holds the CPU
// engine's replicas to one process:
//  - synchronised batch norm (BatchNormStats::global): the first step's loss and every gradient
//    as one engine's, the running statistics it leaves, and the weights after 3 SGD-momentum
//    steps; the replicas' weights the same bits;
//  - per-process batch norm: each replica's first loss is that of a lone engine on its shard (its
//    own statistics), the summed gradient the lone engines' weighted by their shares, the running
//    statistics replica 0's in every replica, and the replicas' weights alike after 2 steps.
// The replicas are threads of this process on one GPU, and they meet in a test double of the
// collectives (HostStaged: each stream synchronised, the values copied to the host, added there in
// rank order, copied back). NCCL (cuda/nccl_collectives.cu), which `mpirun ... train --device
// cuda` uses, needs a GPU per process and cannot run on the check's one GPU: what this test holds
// is what the engine does with the collectives (the batch moments it gathers and combines, the
// batch-norm sums, the loss over the global batch, the gradient sum, the running statistics).
// NCCL's calls themselves run here in a job of one process, where they copy or leave their input.
//
// How the runs can differ: float summation order only. One engine's cuDNN sums a weight gradient
// over 8 images, the replicas' over 3, 3 and 2, then add the three, and cuDNN may pick other
// algorithms for other batch sizes; batch norm's pass-1 sums are floats added over the replicas
// where one engine adds its chunks in double. check_data_parallel.py measured such differences at
// 1e-5 and below on the CPU; the bars leave room for cuDNN's algorithms and stay far below what a
// missing or doubled sum does (whole percents): per tensor, the first loss to 1e-5, gradients to
// 1e-4 relative (a tensor whose gradient is rounding noise as a whole, norm0's weight at
// initialisation, element by element to 1e-4 of the whole gradient's RMS), the running statistics
// to 1e-5 (a variance corrected with one replica's count instead of the batch's is 3e-4 off), the
// weights after 3 SGD steps to 1e-4 (SGD, unlike Adam, keeps rounding-level differences there).
//
// Usage: test_cuda_replicas. Exit status: 0 passed, 1 failed, 77 no GPU.
#include "cuda/collectives.h"
#include "cuda/context.h"
#include "cuda/cuda_check.h"
#include "cuda/device.h"
#include "cuda/nccl_collectives.h"
#include "cuda/step_engine.h"
#include "dist/communicator.h"
#include "model/init.h"
#include "model/parameters.h"
#include "test_util.h"
#include "train/optimizer.h"
#include "train/parameter_update.h"

#include <algorithm>
#include <barrier>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace dn::cuda {
namespace {

using test::relative_error;

int failures = 0;

void fail_check(const std::string& what) {
    ++failures;
    std::printf("FAILED %s\n", what.c_str());
}

// Where the replicas' threads meet: each hands in its bytes and gets everyone's, in rank order.
class Meeting {
public:
    explicit Meeting(int replicas) : barrier_(replicas), slots_(size_t(replicas)) {}
    std::vector<std::vector<char>> exchange(int rank, std::vector<char> mine) {
        slots_[size_t(rank)] = std::move(mine);
        barrier_.arrive_and_wait();
        std::vector<std::vector<char>> all = slots_;
        barrier_.arrive_and_wait();  // no slot is written again before every replica has read it
        return all;
    }

private:
    std::barrier<> barrier_;
    std::vector<std::vector<char>> slots_;
};

class HostStaged final : public DeviceCollectives {
public:
    HostStaged(std::shared_ptr<Meeting> meeting, int rank, int size)
        : meeting_(std::move(meeting)), rank_(rank), size_(size) {}
    int rank() const override { return rank_; }
    int size() const override { return size_; }

    void sum(const float* mine, float* total, int64_t n, cudaStream_t stream) override {
        const auto all = meeting_->exchange(rank_, download(mine, n * int64_t(sizeof(float)), stream));
        std::vector<float> sums(size_t(n), 0.0f);
        for (const std::vector<char>& theirs : all)
            for (int64_t i = 0; i < n; ++i) sums[size_t(i)] += reinterpret_cast<const float*>(theirs.data())[i];
        upload(total, sums.data(), n * int64_t(sizeof(float)), stream);
    }
    void gather_all(const double* mine, double* all, int64_t n, cudaStream_t stream) override {
        const int64_t bytes = n * int64_t(sizeof(double));
        const auto parts = meeting_->exchange(rank_, download(mine, bytes, stream));
        std::vector<char> joined;
        for (const std::vector<char>& part : parts) joined.insert(joined.end(), part.begin(), part.end());
        upload(all, joined.data(), int64_t(joined.size()), stream);
    }
    void broadcast(float* values, int64_t n, int root, cudaStream_t stream) override {
        const auto all = meeting_->exchange(rank_, download(values, n * int64_t(sizeof(float)), stream));
        upload(values, all[size_t(root)].data(), n * int64_t(sizeof(float)), stream);
    }

private:
    static std::vector<char> download(const void* device, int64_t bytes, cudaStream_t stream) {
        std::vector<char> host(static_cast<size_t>(bytes));
        CUDA_CHECK(cudaMemcpyAsync(host.data(), device, size_t(bytes), cudaMemcpyDeviceToHost, stream));
        CUDA_CHECK(cudaStreamSynchronize(stream));
        return host;
    }
    static void upload(void* device, const void* host, int64_t bytes, cudaStream_t stream) {
        CUDA_CHECK(cudaMemcpyAsync(device, host, size_t(bytes), cudaMemcpyHostToDevice, stream));
        CUDA_CHECK(cudaStreamSynchronize(stream));  // the host buffer goes when this returns
    }

    std::shared_ptr<Meeting> meeting_;  // shared by the replicas, which outlive train_replicas
    int rank_, size_;
};

constexpr int64_t kInput = 32, kGlobalBatch = 8;
const std::vector<int64_t> kShards{3, 3, 2};

DenseNetConfig small_config() {
    DenseNetConfig cfg;
    cfg.arch = "replicas_test";
    cfg.growth_rate = 8;
    cfg.block_config = {2, 2};
    cfg.num_init_features = 16;
    cfg.bn_size = 2;
    cfg.num_classes = 10;
    return cfg;  // the ImageNet stem: norm0 and the max pool as well
}

struct Batch {
    std::vector<float> images;  // (N,3,H,W)
    std::vector<int32_t> labels;
};

Batch random_batch(int step) {
    std::mt19937 gen(uint32_t(1234 + step));
    std::normal_distribution<float> pixel(0.0f, 1.0f);
    std::uniform_int_distribution<int32_t> label(0, 9);
    Batch b;
    for (int64_t i = 0; i < kGlobalBatch * 3 * kInput * kInput; ++i) b.images.push_back(pixel(gen));
    for (int64_t i = 0; i < kGlobalBatch; ++i) b.labels.push_back(label(gen));
    return b;
}

// Images [first, first + count) of a batch.
Batch shard_of(const Batch& b, int64_t first, int64_t count) {
    const int64_t image = 3 * kInput * kInput;
    return {std::vector<float>(b.images.begin() + first * image, b.images.begin() + (first + count) * image),
            std::vector<int32_t>(b.labels.begin() + first, b.labels.begin() + first + count)};
}

// One engine (alone, or a replica) with its own host copy of the same initial weights.
struct Trainer {
    Parameters params{small_config()};
    Sgd optimizer{params.count(), SgdOptions{.lr = 0.05, .momentum = 0.9}};
    ParameterUpdate update{optimizer, {}};
    std::unique_ptr<GpuStepEngine> engine;

    Trainer(int64_t batch, DeviceReplicas replicas) {
        init_parameters(params, 7);
        engine = std::make_unique<GpuStepEngine>(params, update, StepEngineSetup{.shape = {batch, kInput, kInput}}, 0,
                                                 Tf32::off, std::move(replicas));
    }
};

double rms(const float* a, int64_t n) {
    double s = 0.0;
    for (int64_t i = 0; i < n; ++i) s += double(a[i]) * a[i];
    return n ? std::sqrt(s / double(n)) : 0.0;
}

// Every tensor of `role` in got against want (the role's storage), to `bar` relative.
void expect_tensors(const std::string& what, const Parameters& params, TensorRole role, const float* got,
                    const float* want, double bar) {
    for (const TensorEntry& e : params.entries()) {
        if (e.role != role) continue;
        const double err = relative_error(got + e.offset, want + e.offset, e.numel());
        if (err > bar) fail_check(what + " " + e.name + ": relative error " + std::to_string(err));
    }
}

// The running statistics after a step: each running_var to `bar` relative, and each running_mean
// element by element to bar / 10 of the square root of its running variance, about 1 after a few
// steps from 1 (running_mean is a tenth of a batch mean, which may be near zero: conv0's outputs
// on zero-mean images, so a relative error would be noise over noise).
void expect_running_stats(const std::string& what, const Parameters& params, const float* got, const float* want,
                          double bar) {
    const std::vector<TensorEntry>& entries = params.entries();
    for (size_t k = 0; k < entries.size(); ++k) {
        const TensorEntry& e = entries[k];
        if (e.role != TensorRole::running_stat) continue;
        const std::string suffix = "running_mean";
        if (e.name.size() < suffix.size() || e.name.compare(e.name.size() - suffix.size(), suffix.size(), suffix) != 0) {
            const double err = relative_error(got + e.offset, want + e.offset, e.numel());
            if (err > bar) fail_check(what + " " + e.name + ": relative error " + std::to_string(err));
            continue;
        }
        const TensorEntry& var = entries[k + 1];  // state_dict order: running_mean, running_var
        double worst = 0.0;
        for (int64_t c = 0; c < e.numel(); ++c)
            worst = std::max(worst, std::fabs(double(got[e.offset + c]) - want[e.offset + c]) /
                                        std::sqrt(double(want[var.offset + c])));
        if (worst > bar / 10.0)
            fail_check(what + " " + e.name + ": off by " + std::to_string(worst) + " of its channels' deviation");
    }
}

// The gradients: 1e-4 per tensor, and a tensor whose gradient is rounding noise as a whole (RMS
// under 1e-3 of the whole gradient's) element by element to 1e-4 of the whole gradient's RMS, as
// check_data_parallel.py holds them.
void expect_gradients(const Parameters& got, const std::vector<float>& want) {
    const double whole = rms(want.data(), got.count());
    for (const TensorEntry& e : got.entries()) {
        if (e.role != TensorRole::parameter) continue;
        const float *g = got.grads() + e.offset, *w = want.data() + e.offset;
        if (rms(w, e.numel()) < 1e-3 * whole) {
            for (int64_t i = 0; i < e.numel(); ++i)
                if (std::fabs(double(g[i]) - w[i]) > 1e-4 * whole) {
                    fail_check("gradient of " + e.name + "[" + std::to_string(i) + "], a tensor of rounding noise");
                    break;
                }
            continue;
        }
        const double err = relative_error(g, w, e.numel());
        if (err > 1e-4) fail_check("gradient of " + e.name + ": relative error " + std::to_string(err));
    }
}

// The replicas, each on a thread of its own, for `steps` steps: losses[r][s] is replica r's loss
// at step s. Each replica keeps its host parameters brought up to date (to_host) after every step.
std::vector<std::unique_ptr<Trainer>> train_replicas(BatchNormStats stats, int steps,
                                                     std::vector<std::vector<float>>& losses) {
    const int n = int(kShards.size());
    const auto meeting = std::make_shared<Meeting>(n);
    std::vector<std::unique_ptr<Trainer>> replicas(static_cast<size_t>(n));
    losses.assign(size_t(n), {});
    std::vector<std::thread> threads;
    for (int r = 0; r < n; ++r)
        threads.emplace_back([&, r] {
            try {
                DeviceReplicas job;
                job.collectives = std::make_unique<HostStaged>(meeting, r, n);
                job.shard_images = kShards;
                job.stats = stats;
                replicas[size_t(r)] = std::make_unique<Trainer>(kShards[size_t(r)], std::move(job));
                int64_t first = 0;
                for (int q = 0; q < r; ++q) first += kShards[size_t(q)];
                for (int s = 0; s < steps; ++s) {
                    const Batch shard = shard_of(random_batch(s), first, kShards[size_t(r)]);
                    StepEngine& engine = *replicas[size_t(r)]->engine;
                    losses[size_t(r)].push_back(engine.forward(shard.images.data(), shard.labels.data()));
                    engine.backward_and_update();
                    engine.to_host();
                }
            } catch (const std::exception& e) {
                // The others would wait for this one at their next meeting: end here.
                std::printf("FAILED replica %d: %s\n", r, e.what());
                std::fflush(stdout);
                std::_Exit(1);
            }
        });
    for (std::thread& t : threads) t.join();
    return replicas;
}

// The replicas' host copies the same bits as replica 0's: weights and running statistics.
void expect_replicas_agree(const std::string& what, const std::vector<std::unique_ptr<Trainer>>& replicas) {
    const Parameters& first = replicas[0]->params;
    for (size_t r = 1; r < replicas.size(); ++r) {
        const Parameters& p = replicas[r]->params;
        if (relative_error(p.values(), first.values(), p.count()) != 0.0)
            fail_check(what + ": replica " + std::to_string(r) + "'s weights differ from replica 0's");
        if (relative_error(p.running_stats(), first.running_stats(), p.running_count()) != 0.0)
            fail_check(what + ": replica " + std::to_string(r) + "'s running statistics differ from replica 0's");
    }
}

void check_synchronised() {
    // One engine on the whole batch: its first step's gradients, then 3 steps.
    Trainer alone(kGlobalBatch, {});
    std::vector<float> alone_losses, first_grads, first_running;
    for (int s = 0; s < 3; ++s) {
        const Batch batch = random_batch(s);
        alone_losses.push_back(alone.engine->forward(batch.images.data(), batch.labels.data()));
        alone.engine->backward_and_update();
        alone.engine->to_host();
        if (s > 0) continue;
        const Parameters& p = alone.params;
        first_grads.assign(p.grads(), p.grads() + p.count());
        first_running.assign(p.running_stats(), p.running_stats() + p.running_count());
    }
    // The replicas' first step, then all 3.
    std::vector<std::vector<float>> losses;
    const auto first_step = train_replicas(BatchNormStats::global, 1, losses);
    double loss = 0.0;
    for (size_t r = 0; r < kShards.size(); ++r) loss += double(losses[r][0]) * double(kShards[r]);
    loss /= double(kGlobalBatch);
    if (std::fabs(loss - alone_losses[0]) > 1e-5 * std::fabs(alone_losses[0]))
        fail_check("synchronised: first loss " + std::to_string(loss) + ", one engine's " +
                   std::to_string(alone_losses[0]));
    const Parameters& replica0 = first_step[0]->params;
    expect_gradients(replica0, first_grads);
    expect_running_stats("synchronised: running statistic", replica0, replica0.running_stats(), first_running.data(),
                         1e-5);
    expect_replicas_agree("synchronised, 1 step", first_step);

    const auto three_steps = train_replicas(BatchNormStats::global, 3, losses);
    const Parameters& trained = three_steps[0]->params;
    expect_tensors("synchronised, 3 steps: weight", trained, TensorRole::parameter, trained.values(),
                   alone.params.values(), 1e-4);
    expect_running_stats("synchronised, 3 steps: running statistic", trained, trained.running_stats(),
                         alone.params.running_stats(), 1e-4);
    expect_replicas_agree("synchronised, 3 steps", three_steps);
    std::printf("synchronised batch norm: %s\n", failures ? "FAILED" : "ok");
}

// Per-process batch norm is plain DDP: replica r's step is a lone engine's on its shard, with its
// shard's own statistics, and the summed gradient is the lone engines' gradients weighted by their
// shares of the batch (each is the mean over its shard). After the step every replica holds
// replica 0's running statistics, a lone engine 0's.
void check_per_process() {
    const int before = failures;
    std::vector<std::vector<float>> losses;
    const auto replicas = train_replicas(BatchNormStats::per_process, 1, losses);
    const Batch batch = random_batch(0);
    std::vector<double> weighted(size_t(replicas[0]->params.count()), 0.0);
    std::vector<float> lone_running;
    int64_t first = 0;
    for (size_t r = 0; r < kShards.size(); ++r) {
        Trainer lone(kShards[r], {});
        const Batch shard = shard_of(batch, first, kShards[r]);
        const float loss = lone.engine->forward(shard.images.data(), shard.labels.data());
        lone.engine->backward_and_update();
        lone.engine->to_host();
        if (std::fabs(double(loss) - losses[r][0]) > 1e-6 * std::fabs(double(loss)))
            fail_check("per-process: replica " + std::to_string(r) + "'s first loss " + std::to_string(losses[r][0]) +
                       ", a lone engine's on its shard " + std::to_string(loss));
        const Parameters& p = lone.params;
        for (int64_t i = 0; i < p.count(); ++i)
            weighted[size_t(i)] += double(kShards[r]) / double(kGlobalBatch) * double(p.grads()[i]);
        if (r == 0) lone_running.assign(p.running_stats(), p.running_stats() + p.running_count());
        first += kShards[r];
    }
    expect_gradients(replicas[0]->params, std::vector<float>(weighted.begin(), weighted.end()));
    for (size_t r = 0; r < replicas.size(); ++r)
        expect_running_stats("per-process: replica " + std::to_string(r) + "'s running statistic (replica 0's)",
                             replicas[r]->params, replicas[r]->params.running_stats(), lone_running.data(), 1e-6);
    expect_replicas_agree("per-process, 1 step", replicas);
    expect_replicas_agree("per-process, 2 steps", train_replicas(BatchNormStats::per_process, 2, losses));
    std::printf("per-process batch norm: %s\n", failures > before ? "FAILED" : "ok");
}

// NCCL's calls, in a job of one process (NCCL joins one process per GPU, so one is all a machine
// with one GPU can run): sums and gathers copy, a broadcast leaves its values, out of place and in.
void check_nccl_alone() {
    if (!nccl_built()) {
        std::printf("NCCL: this engine was built without it, not checked\n");
        return;
    }
    const int before = failures;
    std::unique_ptr<Communicator> job = single_process();
    std::unique_ptr<DeviceCollectives> nccl = nccl_collectives(*job, 0);
    Stream stream;
    const std::vector<float> values{1.5f, -2.0f, 3.25f, 1e-8f};
    const std::vector<double> moments{0.1, 2.0 / 3.0};
    DeviceBuffer a(values.size() * sizeof(float)), b(values.size() * sizeof(float));
    DeviceBuffer m(moments.size() * sizeof(double)), gathered(moments.size() * sizeof(double));
    CUDA_CHECK(cudaMemcpy(a.bytes(), values.data(), a.size(), cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(m.bytes(), moments.data(), m.size(), cudaMemcpyHostToDevice));
    const int64_t n = int64_t(values.size());
    nccl->sum(a.floats(), b.floats(), n, stream.get());
    nccl->sum(a.floats(), a.floats(), n, stream.get());
    nccl->broadcast(a.floats(), n, 0, stream.get());
    nccl->gather_all(reinterpret_cast<const double*>(m.bytes()), reinterpret_cast<double*>(gathered.bytes()),
                     int64_t(moments.size()), stream.get());
    CUDA_CHECK(cudaStreamSynchronize(stream.get()));
    std::vector<float> got_a(values.size()), got_b(values.size());
    std::vector<double> got_m(moments.size());
    CUDA_CHECK(cudaMemcpy(got_a.data(), a.bytes(), a.size(), cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(got_b.data(), b.bytes(), b.size(), cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(got_m.data(), gathered.bytes(), gathered.size(), cudaMemcpyDeviceToHost));
    if (got_b != values) fail_check("NCCL: a sum out of place over one process is not a copy");
    if (got_a != values) fail_check("NCCL: a sum in place and a broadcast over one process change the values");
    if (got_m != moments) fail_check("NCCL: a gather over one process is not a copy");
    std::printf("NCCL in a job of one process: %s\n", failures > before ? "FAILED" : "ok");
}

}  // namespace
}  // namespace dn::cuda

int main() {
    std::string why;
    if (dn::cuda::visible_devices(&why) == 0) {
        std::printf("skipped: no CUDA device is visible (%s)\n", why.c_str());
        return 77;
    }
    for (void (*check)() : {dn::cuda::check_synchronised, dn::cuda::check_per_process, dn::cuda::check_nccl_alone}) {
        try {
            check();
        } catch (const std::exception& e) {
            ++dn::cuda::failures;
            std::printf("FAILED: %s\n", e.what());
        }
    }
    std::printf("%d checks failed\n", dn::cuda::failures);
    return dn::cuda::failures ? 1 : 0;
}
