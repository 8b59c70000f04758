#include "data/batch_loader.h"

#include "data/shard.h"

#include <algorithm>
#include <chrono>
#include <numeric>
#include <random>
#include <string>
#include <stdexcept>

namespace dn {

BatchLoader::BatchLoader(const ImageSet& set, const Transform& transform, const LoaderOptions& options)
    : set_(set), transform_(transform), options_(options) {
    if (options.batch <= 0) throw std::invalid_argument("the batch size must be positive");
    if (options.threads < 0) throw std::invalid_argument("loader threads must be 0 or more");
    if (options.shards < 1 || options.shard < 0 || options.shard >= options.shards)
        throw std::invalid_argument("shard " + std::to_string(options.shard) + " of " + std::to_string(options.shards));
    validate(transform, set);
    count_ = options.limit > 0 ? std::min(options.limit, set.count) : set.count;
    batches_ = options.last_batch == LastBatch::drop ? count_ / options.batch : (count_ + options.batch - 1) / options.batch;
    if (batches_ == 0)
        throw std::invalid_argument("the data set has " + std::to_string(count_) + " images, fewer than one batch of " +
                                    std::to_string(options.batch));
    // One batch in the caller's hands, one being filled per worker, one ready in reserve.
    const size_t depth = size_t(options.threads) + 2;
    slots_.resize(depth);
    slot_batch_.assign(depth, -1);
    slot_error_.resize(depth);
    const size_t image_floats = size_t(transform.channels * transform.size * transform.size);
    const size_t capacity = size_t(shard_size(options.batch, options.shard, options.shards));
    for (auto& slot : slots_) {
        slot.images.resize(capacity * image_floats);
        slot.labels.resize(capacity);
    }
    try {
        for (int64_t t = 0; t < options.threads; ++t) workers_.emplace_back([this] { work(); });
    } catch (...) {
        stop_workers();  // the ones already started, before the exception leaves the constructor
        throw;
    }
}

BatchLoader::~BatchLoader() { stop_workers(); }

void BatchLoader::stop_workers() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    changed_.notify_all();
    for (auto& w : workers_) w.join();
    workers_.clear();
}

int64_t BatchLoader::images_per_epoch() const {
    return options_.last_batch == LastBatch::drop ? batches_ * options_.batch : count_;
}

int64_t BatchLoader::shard_images_per_epoch() const {
    const int64_t B = options_.batch, last = images_per_epoch() - (batches_ - 1) * B;
    return (batches_ - 1) * shard_size(B, options_.shard, options_.shards) +
           shard_size(last, options_.shard, options_.shards);
}

void BatchLoader::start_epoch(int64_t epoch, int64_t first_batch) {
    if (first_batch < 0 || first_batch > batches_)
        throw std::invalid_argument("cannot start at batch " + std::to_string(first_batch) + " of an epoch of " +
                                    std::to_string(batches_) + " (has the data set changed?)");
    std::unique_lock lock(mutex_);
    // Workers still filling a batch of the previous epoch read order_ and epoch_: let them finish.
    changed_.wait(lock, [&] { return in_flight_ == 0; });
    epoch_ = epoch;
    order_.resize(size_t(count_));
    std::iota(order_.begin(), order_.end(), 0);
    if (options_.order == Order::shuffled) {
        std::seed_seq seed{uint32_t(options_.seed), uint32_t(options_.seed >> 32), uint32_t(epoch)};
        std::mt19937_64 rng(seed);
        std::shuffle(order_.begin(), order_.end(), rng);
    }
    next_to_claim_ = next_to_deliver_ = first_batch;
    end_ = batches_;
    std::fill(slot_batch_.begin(), slot_batch_.end(), -1);
    std::fill(slot_error_.begin(), slot_error_.end(), nullptr);
    lock.unlock();
    changed_.notify_all();
}

const Batch* BatchLoader::next() {
    std::unique_lock lock(mutex_);
    if (next_to_deliver_ >= end_) return nullptr;
    const int64_t k = next_to_deliver_;
    const size_t slot = size_t(k) % slots_.size();
    if (workers_.empty()) {
        const auto start = std::chrono::steady_clock::now();
        fill(slots_[slot], k, Filler::inline_threads);
        wait_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        ++next_to_deliver_;
        return &slots_[slot];
    }
    const auto start = std::chrono::steady_clock::now();
    changed_.wait(lock, [&] { return slot_batch_[slot] == k; });
    wait_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (slot_error_[slot]) std::rethrow_exception(slot_error_[slot]);
    ++next_to_deliver_;
    lock.unlock();
    changed_.notify_all();  // the slot of batch k-1 is free again
    return &slots_[slot];
}

double BatchLoader::busy_seconds() {
    std::lock_guard lock(mutex_);
    return busy_seconds_;
}

void BatchLoader::work() {
    std::unique_lock lock(mutex_);
    for (;;) {
        // Batch next_to_deliver_ - 1 may still be in the caller's hands; its slot is not free.
        changed_.wait(lock, [&] {
            return stopping_ || (next_to_claim_ < end_ && next_to_claim_ < next_to_deliver_ + int64_t(slots_.size()) - 1);
        });
        if (stopping_) return;
        const int64_t k = next_to_claim_++;
        const size_t slot = size_t(k) % slots_.size();
        ++in_flight_;
        lock.unlock();
        std::exception_ptr error;
        const auto start = std::chrono::steady_clock::now();
        try {
            fill(slots_[slot], k, Filler::worker);
        } catch (...) {
            error = std::current_exception();  // handed to the caller by next(), not lost with this thread
        }
        const double busy = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        lock.lock();
        busy_seconds_ += busy;
        --in_flight_;
        slot_error_[slot] = error;
        slot_batch_[slot] = k;
        changed_.notify_all();
    }
}

void BatchLoader::fill(Batch& batch, int64_t k, Filler filler) {
    const int64_t B = options_.batch, global_size = std::min(B, count_ - k * B);
    const int64_t first = k * B + shard_begin(global_size, options_.shard, options_.shards);
    const size_t image_floats = size_t(transform_.channels * transform_.size * transform_.size);
    batch.size = shard_size(global_size, options_.shard, options_.shards);
    std::exception_ptr error;  // an exception may not leave an OpenMP region; it is rethrown after
#pragma omp parallel for schedule(dynamic) if (filler == Filler::inline_threads)
    for (int64_t i = 0; i < batch.size; ++i) {
        try {
            thread_local std::vector<uint8_t> scratch;
            const int32_t index = order_[size_t(first + i)];
            // Each image's augmentation depends only on (seed, epoch, image), never on which
            // thread prepares it or when.
            std::seed_seq seed{uint32_t(options_.seed), uint32_t(options_.seed >> 32), uint32_t(epoch_),
                               uint32_t(index)};
            std::mt19937_64 rng(seed);
            transform_image(batch.images.data() + size_t(i) * image_floats, set_, index, transform_, rng, scratch);
            batch.labels[size_t(i)] = set_.labels[size_t(index)];
        } catch (...) {
#pragma omp critical(batch_loader_error)
            if (!error) error = std::current_exception();
        }
    }
    if (error) std::rethrow_exception(error);
    std::fill(batch.images.begin() + ptrdiff_t(size_t(batch.size) * image_floats), batch.images.end(), 0.0f);
    std::fill(batch.labels.begin() + batch.size, batch.labels.end(), 0);
}

}  // namespace dn
