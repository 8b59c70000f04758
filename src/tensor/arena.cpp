#include "tensor/arena.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>

namespace dn {

static constexpr size_t kAlign = 64;
static size_t padded(size_t bytes) { return (bytes + kAlign - 1) / kAlign * kAlign; }

size_t MemoryPlan::reserve(std::string name, size_t bytes, Lifetime lifetime) {
    const size_t size = padded(bytes);
    // The regions alive at the same time, by offset; the new one goes in the first gap that fits.
    std::vector<std::pair<size_t, size_t>> taken;  // [begin, end)
    for (const Region& r : regions_)
        if (r.lifetime.overlaps(lifetime)) taken.emplace_back(r.offset, r.offset + padded(r.bytes));
    std::sort(taken.begin(), taken.end());
    size_t offset = 0;
    for (const auto& [begin, end] : taken) {
        if (offset + size <= begin) break;
        offset = std::max(offset, end);
    }
    regions_.push_back({std::move(name), offset, bytes, lifetime});
    total_ = std::max(total_, offset + size);
    return offset;
}

Arena::Arena(size_t bytes) : bytes_(bytes) {
    const size_t size = padded(bytes);
    void* p = std::aligned_alloc(kAlign, size == 0 ? kAlign : size);
    if (!p) throw std::bad_alloc();
    // Zeroed so that a region read before it is first written holds 0, never garbage.
    std::memset(p, 0, size);
    base_.reset(static_cast<std::byte*>(p));
}

void Arena::Free::operator()(std::byte* p) const { std::free(p); }

}  // namespace dn
