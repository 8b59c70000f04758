#include "tensor/arena.h"

#include <cstdlib>
#include <cstring>
#include <new>

namespace dn {

static constexpr size_t kAlign = 64;

size_t MemoryPlan::reserve(std::string name, size_t bytes) {
    size_t offset = total_;
    size_t padded = (bytes + kAlign - 1) / kAlign * kAlign;
    regions_.push_back({std::move(name), offset, bytes});
    total_ += padded;
    return offset;
}

Arena::Arena(size_t bytes) : bytes_(bytes) {
    size_t padded = (bytes + kAlign - 1) / kAlign * kAlign;
    void* p = std::aligned_alloc(kAlign, padded == 0 ? kAlign : padded);
    if (!p) throw std::bad_alloc();
    // Zeroed so that a region read before it is first written holds 0, never garbage.
    std::memset(p, 0, padded);
    base_.reset(static_cast<std::byte*>(p));
}

void Arena::Free::operator()(std::byte* p) const { std::free(p); }

}  // namespace dn
