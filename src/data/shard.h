// defines: shard_begin, shard_size (how a batch is split among data-parallel processes)
#pragma once
#include <cstdint>

namespace dn {

// A batch of `size` images split into `parts` contiguous shards, in order: the first size % parts
// shards take one image more. A smaller batch never gives a shard more images than a larger one,
// so a model built for its shard of a full batch also fits its shard of a short last one.
inline int64_t shard_begin(int64_t size, int64_t part, int64_t parts) {
    const int64_t base = size / parts, extra = size % parts;
    return part * base + (part < extra ? part : extra);
}
inline int64_t shard_size(int64_t size, int64_t part, int64_t parts) {
    return shard_begin(size, part + 1, parts) - shard_begin(size, part, parts);
}

}  // namespace dn
