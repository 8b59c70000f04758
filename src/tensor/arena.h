// defines: Lifetime, MemoryPlan (named regions with offsets, sharing bytes where their lifetimes
//          allow), Arena (one aligned allocation for a plan)
#pragma once
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

namespace dn {

// When a region holds something: the first and last positions, on a timeline the plan's maker
// numbers (the parts of a training step, in the order they run), at which it is written or read.
// A region with a lifetime must be written before it is read in it: the regions it shares bytes
// with leave their values there. The default spans every position.
struct Lifetime {
    int first = 0;
    int last = std::numeric_limits<int>::max();
    bool overlaps(const Lifetime& other) const { return first <= other.last && other.first <= last; }
};

// A plan is made once per (architecture, batch, input size, mode); the training step then runs
// without allocating. Regions are 64-byte aligned so that every view starts on a cache line.
// Regions whose lifetimes are disjoint may share bytes: each goes at the lowest offset where it
// overlaps no region already placed that is alive at the same time (first fit, in the order of
// reserve's calls).
class MemoryPlan {
public:
    struct Region {
        std::string name;
        size_t offset;  // bytes from the arena's start
        size_t bytes;
        Lifetime lifetime;
    };

    // Returns the region's byte offset.
    size_t reserve(std::string name, size_t bytes, Lifetime lifetime = {});
    size_t reserve_floats(std::string name, int64_t count, Lifetime lifetime = {}) {
        return reserve(std::move(name), size_t(count) * sizeof(float), lifetime);
    }

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
