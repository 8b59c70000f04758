// defines: FeatureMap, a view of NHWC activations whose pixels may be strided
#pragma once
#include <cassert>
#include <cstdint>

namespace dn {

// Activations are channels-last (NHWC) everywhere in the engine. A pixel's channels are
// contiguous, so the first c channels of a dense block's buffer are a view with the block's
// full channel count as pixel stride: no copy is needed to read a layer's input prefix, and
// any channel count (growth 12 or 32) works. oneDNN's jit convolutions are as fast in nhwc as
// in nChw16c on this CPU, and cuDNN's fast layout is NHWC too.
struct FeatureMap {
    float* data = nullptr;
    int64_t n = 0, h = 0, w = 0;  // batch, height, width
    int64_t c = 0;                // channels in this view
    int64_t ld = 0;               // floats from one pixel to the next (>= c)

    int64_t pixels() const { return n * h * w; }
    bool dense() const { return ld == c; }
    int64_t floats() const { return pixels() * c; }
    float* pixel(int64_t p) const { return data + p * ld; }

    // The channels [first, first + count) of every pixel.
    FeatureMap channels(int64_t first, int64_t count) const {
        assert(first >= 0 && first + count <= c);
        return {data + first, n, h, w, count, ld};
    }
};

inline FeatureMap dense_map(float* data, int64_t n, int64_t h, int64_t w, int64_t c) {
    return {data, n, h, w, c, c};
}

}  // namespace dn
