#include "data/batch_loader.h"

#include <algorithm>
#include <chrono>
#include <numeric>
#include <random>
#include <stdexcept>

namespace dn {

BatchLoader::BatchLoader(const ImageSet& set, const Transform& transform, const LoaderOptions& options)
    : set_(set), transform_(transform), options_(options) {
    if (options.batch <= 0) throw std::invalid_argument("the batch size must be positive");
    if (options.threads < 0) throw std::invalid_argument("loader threads must be 0 or more");
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
    const size_t image_floats = size_t(transform.channels * transform.size * transform.size);
    for (auto& slot : slots_) {
        slot.images.resize(size_t(options.batch) * image_floats);
        slot.labels.resize(size_t(options.batch));
    }
    for (int64_t t = 0; t < options.threads; ++t) workers_.emplace_back([this] { work(); });
}

BatchLoader::~BatchLoader() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    changed_.notify_all();
    for (auto& w : workers_) w.join();
}

int64_t BatchLoader::images_per_epoch() const {
    return options_.last_batch == LastBatch::drop ? batches_ * options_.batch : count_;
}

void BatchLoader::start_epoch(int64_t epoch, int64_t first_batch) {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return in_flight_ == 0; });
    epoch_ = epoch;
    ++generation_;
    order_.resize(size_t(count_));
    std::iota(order_.begin(), order_.end(), 0);
    if (options_.order == Order::shuffled) {
        std::seed_seq seed{uint32_t(options_.seed), uint32_t(options_.seed >> 32), uint32_t(epoch)};
        std::mt19937_64 rng(seed);
        std::shuffle(order_.begin(), order_.end(), rng);
    }
    next_to_claim_ = next_to_deliver_ = std::clamp<int64_t>(first_batch, 0, batches_);
    end_ = batches_;
    std::fill(slot_batch_.begin(), slot_batch_.end(), -1);
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
        fill(slots_[slot], k, true);
        wait_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        ++next_to_deliver_;
        return &slots_[slot];
    }
    const auto start = std::chrono::steady_clock::now();
    changed_.wait(lock, [&] { return slot_batch_[slot] == k; });
    wait_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    ++next_to_deliver_;
    lock.unlock();
    changed_.notify_all();  // the slot of batch k-1 is free again
    return &slots_[slot];
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
        const int64_t generation = generation_;
        ++in_flight_;
        lock.unlock();
        fill(slots_[size_t(k) % slots_.size()], k, false);
        lock.lock();
        --in_flight_;
        if (generation == generation_) slot_batch_[size_t(k) % slots_.size()] = k;
        changed_.notify_all();
    }
}

void BatchLoader::fill(Batch& batch, int64_t k, bool parallel) {
    const int64_t B = options_.batch, first = k * B;
    const size_t image_floats = size_t(transform_.channels * transform_.size * transform_.size);
    batch.size = std::min(B, count_ - first);
#pragma omp parallel for schedule(dynamic) if (parallel)
    for (int64_t i = 0; i < batch.size; ++i) {
        thread_local std::vector<uint8_t> scratch;
        const int32_t index = order_[size_t(first + i)];
        // Each image's augmentation depends only on (seed, epoch, image), never on which thread
        // prepares it or when.
        std::seed_seq seed{uint32_t(options_.seed), uint32_t(options_.seed >> 32), uint32_t(epoch_), uint32_t(index)};
        std::mt19937_64 rng(seed);
        transform_image(batch.images.data() + size_t(i) * image_floats, set_, index, transform_, rng, scratch);
        batch.labels[size_t(i)] = set_.labels[size_t(index)];
    }
    std::fill(batch.images.begin() + ptrdiff_t(size_t(batch.size) * image_floats), batch.images.end(), 0.0f);
    std::fill(batch.labels.begin() + batch.size, batch.labels.end(), 0);
}

}  // namespace dn
