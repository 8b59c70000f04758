#include "dist/data_parallel.h"

#include "data/shard.h"

#include <algorithm>
#include <chrono>
#include <stdexcept>

namespace dn {

namespace {
double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Gradient buckets of 4 MB: DenseNet-121's 32 MB of gradients start in 8 sums, the first while
// backward is still in the last dense block. Smaller buckets would start earlier but pay each
// sum's latency more often (DDP's default is 25 MB, for models with larger layers).
constexpr int64_t kBucketFloats = int64_t(1) << 20;

// The contiguous storage of every tensor of one role (they are allocated together, in order).
std::pair<char*, int64_t> role_storage(Parameters& params, TensorRole role, int64_t element_bytes) {
    char* first = nullptr;
    int64_t elements = 0;
    for (const auto& e : params.entries())
        if (e.role == role) {
            if (e.offset == 0) first = static_cast<char*>(params.data(e));
            elements += e.numel();
        }
    return {first, elements * element_bytes};
}
}  // namespace

DataParallel::DataParallel(Communicator& comm, Parameters& params, int64_t global_batch, BatchNormStats stats)
    : comm_(comm), params_(params), global_batch_(global_batch), stats_(stats) {
    if (global_batch < comm.size())
        throw std::invalid_argument("a batch of " + std::to_string(global_batch) + " images cannot be shared among " +
                                    std::to_string(comm.size()) + " processes (--batch-size is the global batch)");
    for (int64_t begin = 0; begin < params.count(); begin += kBucketFloats)
        buckets_.emplace_back(begin, std::min(params.count(), begin + kBucketFloats));
    unstarted_ = buckets_.size();
}

int64_t DataParallel::local_batch() const { return shard_size(global_batch_, comm_.rank(), comm_.size()); }

// Every process gathers every process's (mean, var) and combines them in rank order, in double,
// as Chan et al.'s parallel variance: the same bits everywhere, no E[x^2] - E[x]^2 cancellation,
// and, from double moments, the float that one process computing the whole batch rounds to.
int64_t DataParallel::combine_batch_moments(float* mean, float* var, const double* local_mean, const double* local_var,
                                            int64_t channels, int64_t count) {
    const int64_t C = channels, ranks = comm_.size();
    if (int64_t(packed_.size()) < 2 * C) {  // grows in the first step only
        packed_.resize(size_t(2 * C));
        gathered_.resize(size_t(2 * C * ranks));
    }
    std::copy(local_mean, local_mean + C, packed_.data());
    std::copy(local_var, local_var + C, packed_.data() + C);
    const auto start = std::chrono::steady_clock::now();
    comm_.gather_all(packed_.data(), gathered_.data(), 2 * C);
    batch_norm_seconds_ += seconds_since(start);
    // Shards differ by at most an image; each process's count follows from its share of the batch.
    const int64_t per_image = count / local_batch(), total = global_batch_ * per_image;
    for (int64_t j = 0; j < C; ++j) {
        double m = 0.0;
        for (int64_t r = 0; r < ranks; ++r)
            m += double(shard_size(global_batch_, r, ranks) * per_image) * gathered_[size_t(r * 2 * C + j)];
        m /= double(total);
        double v = 0.0;
        for (int64_t r = 0; r < ranks; ++r) {
            const double d = gathered_[size_t(r * 2 * C + j)] - m;
            v += double(shard_size(global_batch_, r, ranks) * per_image) * (gathered_[size_t(r * 2 * C + C + j)] + d * d);
        }
        mean[j] = float(m);
        var[j] = float(v / double(total));
    }
    return total;
}

void DataParallel::sum(double* values, int64_t n) {
    const auto start = std::chrono::steady_clock::now();
    comm_.sum(values, n);
    batch_norm_seconds_ += seconds_since(start);
}

void DataParallel::gradients_final_from(int64_t offset) {
    if (comm_.size() == 1) return;
    // Backward finishes gradients from the end of the flat array towards its start.
    while (unstarted_ > 0 && buckets_[unstarted_ - 1].first >= offset) {
        --unstarted_;
        const auto [begin, end] = buckets_[unstarted_];
        comm_.start_sum(params_.grads() + begin, end - begin);
    }
    comm_.progress();
}

void DataParallel::finish_gradients() {
    if (comm_.size() == 1) return;
    gradients_final_from(0);
    const auto start = std::chrono::steady_clock::now();
    comm_.finish_sums();
    gradient_wait_seconds_ += seconds_since(start);
    unstarted_ = buckets_.size();
}

void DataParallel::share_running_stats() {
    if (comm_.size() == 1 || synchronises_batch_norm()) return;  // synchronised: equal everywhere already
    const auto [stats, stats_bytes] = role_storage(params_, TensorRole::running_stat, sizeof(float));
    comm_.broadcast(stats, stats_bytes, 0);
    const auto [counts, count_bytes] = role_storage(params_, TensorRole::batch_count, sizeof(int64_t));
    comm_.broadcast(counts, count_bytes, 0);
}

void DataParallel::share_parameters() {
    if (comm_.size() == 1) return;
    comm_.broadcast(params_.values(), params_.count() * int64_t(sizeof(float)), 0);
    const auto [stats, stats_bytes] = role_storage(params_, TensorRole::running_stat, sizeof(float));
    comm_.broadcast(stats, stats_bytes, 0);
    const auto [counts, count_bytes] = role_storage(params_, TensorRole::batch_count, sizeof(int64_t));
    comm_.broadcast(counts, count_bytes, 0);
}

void DataParallel::share(std::span<float> values) {
    if (comm_.size() > 1) comm_.broadcast(values.data(), int64_t(values.size_bytes()), 0);
}

void DataParallel::share(int64_t& value) {
    if (comm_.size() > 1) comm_.broadcast(&value, sizeof value, 0);
}

}  // namespace dn
