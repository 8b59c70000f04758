// defines: DataParallel (this process's replica among the job's: its share of each
//          batch, synchronised batch norm, gradient sums in buckets while backward runs, and what
//          rank 0 hands to the others)
#pragma once
#include "dist/communicator.h"
#include "model/parameters.h"
#include "model/replica_sync.h"

#include <span>
#include <utility>
#include <vector>

namespace dn {

class DataParallel final : public ReplicaSync {
public:
    // params: this process's replica (the model it trains). global_batch: the images of one step
    // over all processes; each takes its shard (data/shard.h).
    DataParallel(Communicator& comm, Parameters& params, int64_t global_batch, BatchNormStats stats);

    Communicator& communicator() { return comm_; }
    bool is_root() const { return comm_.rank() == 0; }
    BatchNormStats batch_norm_stats() const { return stats_; }
    int64_t local_batch() const;  // this process's shard of a full batch

    // ReplicaSync
    int64_t global_batch() const override { return global_batch_; }
    int64_t replica() const override { return comm_.rank(); }
    bool synchronises_batch_norm() const override { return stats_ == BatchNormStats::global && comm_.size() > 1; }
    int64_t combine_batch_moments(float* mean, float* var, const double* local_mean, const double* local_var,
                                  int64_t channels, int64_t count) override;
    void sum(double* values, int64_t n) override;
    void gradients_final_from(int64_t offset) override;

    // After backward: waits for the last gradient sums. params.grads() then hold the gradients of
    // the global batch's mean loss, the same bits in every process.
    void finish_gradients();
    // After the optimizer step, with per-process batch norm: rank 0's running statistics to all.
    void share_running_stats();
    // Rank 0's weights and batch-norm buffers to every process (at the start, and after a resume
    // that only rank 0 read from disk).
    void share_parameters();
    // Rank 0's copy to every process.
    void share(std::span<float> values);
    void share(int64_t& value);

    // Bytes each process sends into the gradient sums per step (the flat gradient, once).
    int64_t gradient_bytes() const { return params_.count() * int64_t(sizeof(float)); }
    // Time this process has spent in communication that nothing overlapped, since it started:
    // synchronised batch norm (its collectives sit between layers), and waiting for gradient sums
    // after backward (what backward did not hide).
    double batch_norm_seconds() const { return batch_norm_seconds_; }
    double gradient_wait_seconds() const { return gradient_wait_seconds_; }

private:
    Communicator& comm_;
    Parameters& params_;
    int64_t global_batch_;
    BatchNormStats stats_;
    std::vector<std::pair<int64_t, int64_t>> buckets_;  // [begin, end) of the flat gradient, in order
    size_t unstarted_ = 0;  // buckets_[0, unstarted_) are not yet being summed this step
    std::vector<double> packed_, gathered_;  // combine_batch_moments' (2C) and (size, 2C)
    double batch_norm_seconds_ = 0.0, gradient_wait_seconds_ = 0.0;
};

}  // namespace dn
