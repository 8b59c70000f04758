// defines: BatchNormStats (whose statistics replicas normalise with), ReplicaSync (what a DenseNet
//          needs of the replicas that train it data-parallel: batch statistics and batch-norm
//          gradient sums combined over the global batch, and a word whenever backward has
//          finished a range of parameter gradients)
#pragma once
#include <cstdint>

namespace dn {

// global: batch norm normalises with the statistics of the whole global batch (SyncBatchNorm), so
// N processes compute what one does. per_process: with their own shard's, as plain DDP; the
// statistics are then those of batches N times smaller, and rank 0's running statistics are
// copied to the others after every step, as DDP's broadcast_buffers does.
enum class BatchNormStats { global, per_process };

// Under data parallelism each process holds a replica of the model and trains it on its shard of
// every global batch. A DenseNet given a ReplicaSync (dist/ implements it over a communicator)
// calls it at the points where the replicas must meet; a DenseNet without one trains alone.
class ReplicaSync {
public:
    virtual ~ReplicaSync() = default;

    // The images the loss is the mean of: the sum of every replica's batch.
    virtual int64_t global_batch() const = 0;
    // This replica's number, from 0; replica 0 is the one that holds gradients already summed over
    // the replicas (which the others then contribute as zero).
    virtual int64_t replica() const = 0;

    // Synchronised batch norm: every replica normalises with the statistics of the global batch,
    // as one process would. Off: each normalises with its shard's own (plain DDP).
    virtual bool synchronises_batch_norm() const = 0;
    // local_mean, local_var (channels): this replica's biased statistics over `count` values, in
    // double (batch_moments). mean, var (channels): those of the global batch, the same bits in
    // every replica. Returns the global count.
    virtual int64_t combine_batch_moments(float* mean, float* var, const double* local_mean, const double* local_var,
                                          int64_t channels, int64_t count) = 0;
    // values (n): this replica's in, the sum over the replicas out.
    virtual void sum(double* values, int64_t n) = 0;

    // Backward has written its last contribution to every parameter gradient at flat offsets
    // [offset, count): they may be combined with the other replicas' from now on.
    virtual void gradients_final_from(int64_t offset) = 0;
};

}  // namespace dn
