// defines: last_level_cache_bytes, inference_chunk, executed_shape
#pragma once
#include "model/activation_plan.h"

#include <cstddef>
#include <cstdint>

namespace dn {

// The size of the CPU's last-level cache, from sysfs (32 MiB where it can't be read).
size_t last_level_cache_bytes();

// Inference keeps no activation for a backward, and every image goes through the network on its
// own, so a batch can run a chunk of images at a time through an arena planned for the chunk.
// The chunk is the whole batch where its arena fits in `cache_bytes`, else the largest power of
// two whose arena does (one image at least), so that each layer reads what the one before wrote
// while it is still in cache. Powers of two divide the usual batches: no chunk runs padding. Measured here
// (densenet121, 2 threads, images/s at batch 1/2/4/8/16/32): fp32 at 224x224 37.4/38.1/36.9/
// 36.5/34.5/34.4 (the arena was 16.9 MB an image; it is 11.1 MB at two images now, each part of
// a step having its own scratch; L3 is 32 MiB), bf16 68.1/74.8/73.0/-/-/62.6;
// fp32 at 32x32 1144 at 4, 1786 at 16, 2063 at 64, 1814 at 256; at 64x64 454 at 16, 424 at 64.
int64_t inference_chunk(const DenseNetConfig& cfg, const RunShape& shape, Precision precision, size_t cache_bytes);

// What one run of a DenseNet's primitives takes, on this machine: the batch in training, a chunk
// of it in inference.
RunShape executed_shape(const DenseNetConfig& cfg, const RunShape& shape, Pass pass, Precision precision);

}  // namespace dn
