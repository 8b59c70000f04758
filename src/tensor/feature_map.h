// defines: FeatureMap, a view of activations (f32 or bf16), NHWC with pixels that may be strided,
//          or blocked;
//          Layout, kChannelBlock, dense_map, blocked_map
#pragma once
#include "tensor/dtype.h"

#include <cassert>
#include <cstdint>

namespace dn {

// Activations are channels-last (NHWC) everywhere in the engine. A pixel's channels are
// contiguous, so the first c channels of a dense block's buffer are a view with the block's
// full channel count as pixel stride: no copy is needed to read a layer's input prefix, and
// any channel count (growth 12 or 32) works. oneDNN's jit convolutions are as fast in nhwc as
// in nChw16c on this CPU, and cuDNN's fast layout is NHWC too.
//
// The element type is a tag, not a template parameter: in bf16 precision the same layer code
// runs on bf16 activations where fp32 precision has floats (gradients that are accumulated stay
// f32 in both), and the kernels pick their instantiation from the tags.
// nchw16c is oneDNN's nChw16c: per image, blocks of 16 channels, each a (H, W, 16) plane. Its
// Winograd kernels need it and its 1x1 kernels run faster on it, so the engine's batch norm writes
// and reads it directly for them (a dense map whose channel count is a multiple of 16; ld unused).
enum class Layout { nhwc, nchw16c };
inline constexpr int64_t kChannelBlock = 16;

struct FeatureMap {
    void* data = nullptr;
    int64_t n = 0, h = 0, w = 0;  // batch, height, width
    int64_t c = 0;                // channels in this view
    int64_t ld = 0;               // elements from one pixel to the next (>= c)
    DType type = DType::f32;
    Layout layout = Layout::nhwc;

    int64_t pixels() const { return n * h * w; }
    bool dense() const { return ld == c; }
    int64_t elements() const { return pixels() * c; }
    size_t bytes() const { return size_t(elements()) * dtype_bytes(type); }

    template <class T>
    T* pixel(int64_t p) const {
        assert(sizeof(T) == dtype_bytes(type) && layout == Layout::nhwc);
        return static_cast<T*>(data) + p * ld;
    }

    void* pixel_address(int64_t p) const { return static_cast<char*>(data) + p * ld * int64_t(dtype_bytes(type)); }

    // The channels [first, first + count) of every pixel.
    FeatureMap channels(int64_t first, int64_t count) const {
        assert(first >= 0 && first + count <= c && layout == Layout::nhwc);
        return {static_cast<char*>(data) + first * int64_t(dtype_bytes(type)), n, h, w, count, ld, type};
    }
};

inline FeatureMap dense_map(float* data, int64_t n, int64_t h, int64_t w, int64_t c) {
    return {data, n, h, w, c, c, DType::f32};
}
inline FeatureMap dense_map(bf16* data, int64_t n, int64_t h, int64_t w, int64_t c) {
    return {data, n, h, w, c, c, DType::bf16};
}
inline FeatureMap dense_map(void* data, DType type, int64_t n, int64_t h, int64_t w, int64_t c) {
    return {data, n, h, w, c, c, type};
}
inline FeatureMap blocked_map(void* data, DType type, int64_t n, int64_t h, int64_t w, int64_t c) {
    assert(c % kChannelBlock == 0);
    return {data, n, h, w, c, c, type, Layout::nchw16c};
}

}  // namespace dn
