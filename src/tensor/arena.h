// defines: MemoryPlan (named regions with offsets), Arena (one aligned allocation for a plan)
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace dn {

// A plan is made once per (architecture, batch, input size, mode); the training step then runs
// without allocating. Regions are 64-byte aligned so that every view starts on a cache line.
class MemoryPlan {
public:
    struct Region {
        std::string name;
        size_t offset;  // bytes from the arena's start
        size_t bytes;
    };

    // Returns the region's byte offset.
    size_t reserve(std::string name, size_t bytes);
    size_t reserve_floats(std::string name, int64_t count) { return reserve(std::move(name), size_t(count) * sizeof(float)); }

    size_t total_bytes() const { return total_; }
    const std::vector<Region>& regions() const { return regions_; }

private:
    std::vector<Region> regions_;
    size_t total_ = 0;
};

class Arena {
public:
    Arena() = default;
    explicit Arena(size_t bytes);

    std::byte* base() const { return base_.get(); }
    size_t bytes() const { return bytes_; }
    float* floats_at(size_t offset) const { return reinterpret_cast<float*>(base_.get() + offset); }

private:
    struct Free { void operator()(std::byte* p) const; };
    std::unique_ptr<std::byte, Free> base_;
    size_t bytes_ = 0;
};

}  // namespace dn
