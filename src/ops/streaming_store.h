// defines: kStreamingMinBytes, streams_well, stream_copy, stream_fence
//
// Non-temporal ("streaming") stores for outputs far larger than the caches. A plain store first
// reads the line it writes into the cache (read for ownership), so a pass that reads x and writes y
// moves three lines per line of y; a streaming store writes the line to memory without reading it.
// Measured with 2 threads on an AMD EPYC (Zen 4): y = max(0, x * scale + shift) over 25-103 MB ran
// at 30-34 GB/s (read + write) with plain stores and 46-52 GB/s with streaming ones, and fp32
// training at 224x224 batch 32 ran 1.3% faster (12.29-12.57 against 12.12-12.35 images/s, four
// alternated pairs). An output that the next kernel could read from the cache (the 32 MB L3 here)
// is better written through it: with 8 MB as the threshold bf16 training ran slower, with 32 MB
// (the outputs of norm1 at 56x56 and 28x28) even.
#pragma once
#include "tensor/feature_map.h"

#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(__AVX__)
#include <immintrin.h>
#endif

namespace dn {

inline constexpr size_t kStreamingMinBytes = size_t(32) << 20;

inline constexpr size_t kStreamingGrain = 32;  // one 256-bit store

// Whether kernels should write m with stream_copy: large, a dense or blocked map (so each pixel
// row, or 16-channel segment, is contiguous), and every row starting on a 32-byte boundary.
inline bool streams_well(const FeatureMap& m) {
#if defined(__AVX__)
    const size_t row_bytes = size_t(m.layout == Layout::nhwc ? m.ld : kChannelBlock) * dtype_bytes(m.type);
    return m.bytes() >= kStreamingMinBytes && (m.layout != Layout::nhwc || m.dense()) &&
           reinterpret_cast<uintptr_t>(m.data) % kStreamingGrain == 0 && row_bytes % kStreamingGrain == 0;
#else
    (void)m;
    return false;
#endif
}

// Copies `bytes` (a multiple of kStreamingGrain) from src to dst (aligned to it) with streaming
// stores. A thread calls stream_fence after its last one, before others may read what it wrote.
inline void stream_copy(void* dst, const void* src, size_t bytes) {
#if defined(__AVX__)
    auto* d = static_cast<__m256i*>(dst);
    const auto* s = static_cast<const __m256i*>(src);
    for (size_t i = 0; i < bytes / kStreamingGrain; ++i) _mm256_stream_si256(d + i, _mm256_loadu_si256(s + i));
#else
    std::memcpy(dst, src, bytes);
#endif
}

// Streaming stores are weakly ordered: the fence makes them visible before the barrier that ends
// a parallel loop.
inline void stream_fence() {
#if defined(__AVX__)
    _mm_sfence();
#endif
}

}  // namespace dn
