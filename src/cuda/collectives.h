// defines: cuda::DeviceCollectives (the collectives GPU replicas need, over device memory),
//          cuda::DeviceReplicas (a GPU engine's place among the replicas that train together)
#pragma once
#include "model/replica_sync.h"  // BatchNormStats

#include <cuda_runtime.h>

#include <cstdint>
#include <memory>
#include <numeric>
#include <vector>

namespace dn::cuda {

// The replicas of a data-parallel job on GPUs, one per GPU, and the collectives between them,
// queued on a stream like any other GPU work (NCCL's model: cuda/nccl_collectives.h). Every
// replica calls each collective in the same order. A sum gives every replica the same bits.
class DeviceCollectives {
public:
    virtual ~DeviceCollectives() = default;
    virtual int rank() const = 0;  // 0 .. size() - 1
    virtual int size() const = 0;

    // total (n) = the sum over the replicas of their `mine` (n); total may be mine.
    virtual void sum(const float* mine, float* total, int64_t n, cudaStream_t stream) = 0;
    // all (size(), n) = every replica's mine (n), in rank order.
    virtual void gather_all(const double* mine, double* all, int64_t n, cudaStream_t stream) = 0;
    // values (n) = replica root's values.
    virtual void broadcast(float* values, int64_t n, int root, cudaStream_t stream) = 0;
};

// A GPU engine's replicas: none (collectives empty: it trains alone), or the job's, with the
// images of each one's shard of every batch (in rank order; their sum is the global batch, the
// images the loss is the mean of) and whose statistics batch norm normalises with (global: the
// whole batch's, so that N replicas compute what one does, as the CPU engine's DataParallel).
struct DeviceReplicas {
    std::unique_ptr<DeviceCollectives> collectives;
    std::vector<int64_t> shard_images;
    BatchNormStats stats = BatchNormStats::global;

    bool several() const { return collectives && collectives->size() > 1; }
    bool synchronise_batch_norm() const { return several() && stats == BatchNormStats::global; }
    int64_t global_batch() const { return std::accumulate(shard_images.begin(), shard_images.end(), int64_t(0)); }
};

}  // namespace dn::cuda
