// defines: Batch, Order, BatchLoader (shuffled, transformed, prefetched batches on worker threads)
#pragma once
#include "data/image_set.h"
#include "data/transform.h"

#include <condition_variable>
#include <exception>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace dn {

struct Batch {
    int64_t size = 0;             // images in this batch (the last eval batch may be short), or in
                                  // this process's shard of it
    std::vector<float> images;    // (batch, channels, S, S) as PyTorch's tensors
    std::vector<int32_t> labels;  // (batch); padding entries of a short batch are 0
};

// shuffled: a fresh permutation each epoch; sequential: the data set's order (--no-shuffle, eval).
enum class Order { shuffled, sequential };
// drop: a short last batch is left out (training: the network is built for one batch size);
// keep: it is delivered with size < batch (evaluation sees every image).
enum class LastBatch { drop, keep };

struct LoaderOptions {
    int64_t batch = 32;
    Order order = Order::shuffled;
    LastBatch last_batch = LastBatch::drop;
    int64_t limit = 0;         // use only the first `limit` images (0: all)
    uint64_t seed = 0;
    // Worker threads preparing batches ahead. 0: none; next() prepares each batch itself, on
    // the compute's OpenMP threads, between steps. On a 2-core machine that avoids a worker
    // pre-empting an OpenMP thread in the middle of a convolution, which stalls its barrier.
    int64_t threads = 1;
    // Data parallelism: this process prepares only shard `shard` of `shards` of every batch
    // (data/shard.h); `batch` stays the global batch, and the batches and their order are those of
    // one process.
    int64_t shard = 0, shards = 1;
};

// Workers prepare the next batches while the caller trains on the current one. What an epoch
// delivers is a pure function of (seed, epoch): the permutation and each image's augmentation are
// seeded from them, not from thread timing, so a resumed run sees exactly the images an
// uninterrupted one would.
class BatchLoader {
public:
    BatchLoader(const ImageSet& set, const Transform& transform, const LoaderOptions& options);
    ~BatchLoader();
    BatchLoader(const BatchLoader&) = delete;
    BatchLoader& operator=(const BatchLoader&) = delete;

    // Starts epoch `epoch` (from 1) at batch `first_batch` (non-zero when resuming mid-epoch;
    // at most batches_per_epoch()). The batch the caller holds is no longer valid.
    void start_epoch(int64_t epoch, int64_t first_batch = 0);
    // The next batch, or nullptr at the end of the epoch. Valid until the next call. An error a
    // worker met preparing it is thrown here.
    const Batch* next();

    int64_t batches_per_epoch() const { return batches_; }
    int64_t images_per_epoch() const;  // over every shard
    int64_t shard_images_per_epoch() const;  // in this process's shard
    double wait_seconds() const { return wait_seconds_; }  // time next() spent blocked, all epochs
    // Time workers spent preparing batches, summed over workers, all epochs: while it runs beside
    // the compute's OpenMP threads, a worker takes a core from them.
    double busy_seconds();

private:
    // inline_threads: next() prepares the batch on the OpenMP threads; worker: one worker thread.
    enum class Filler { inline_threads, worker };
    void work();
    void stop_workers();
    void fill(Batch& batch, int64_t index, Filler filler);

    const ImageSet& set_;
    Transform transform_;
    LoaderOptions options_;
    int64_t count_ = 0, batches_ = 0;

    std::mutex mutex_;
    std::condition_variable changed_;
    std::vector<Batch> slots_;       // batch k lives in slots_[k % slots_.size()]
    std::vector<int64_t> slot_batch_;  // which batch a slot holds when ready, -1 when not
    std::vector<std::exception_ptr> slot_error_;  // what went wrong preparing it, if anything
    std::vector<int32_t> order_;
    int64_t epoch_ = 0;
    int64_t next_to_claim_ = 0, next_to_deliver_ = 0, end_ = 0;
    int64_t in_flight_ = 0;
    bool stopping_ = false;
    double wait_seconds_ = 0.0, busy_seconds_ = 0.0;
    std::vector<std::thread> workers_;
};

}  // namespace dn
