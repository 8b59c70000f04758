#include "data/resize.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

namespace dn {

namespace {
// Pillow's PRECISION_BITS: 8 bits of pixel, 2 of headroom, the rest for the weight.
constexpr int kPrecisionBits = 32 - 8 - 2;
constexpr int32_t kHalf = 1 << (kPrecisionBits - 1);

double triangle(double x) {
    x = std::abs(x);
    return x < 1.0 ? 1.0 - x : 0.0;
}

uint8_t clip8(int32_t v) {
    v >>= kPrecisionBits;
    return uint8_t(v < 0 ? 0 : v > 255 ? 255 : v);
}

// Pillow's precompute_coeffs and normalize_coeffs_8bpc, expression for expression: the window
// bounds and each weight must round exactly as Pillow's double arithmetic does, or a pixel
// whose sum lands near a half-way point comes out one grey level off. Then each window is
// widened with zero weights to the same width, kept inside the image: the integer sums are
// unchanged, and the passes run fixed-length loops.
ResizeAxis make_axis(int64_t in, int64_t out) {
    ResizeAxis a;
    a.in = in;
    a.out = out;
    // Pillow's box is float; (float(in) - 0.0f) is exact below 2^24.
    const double scale = double(float(in)) / double(out);
    const double filterscale = std::max(scale, 1.0);
    const double support = 1.0 * filterscale;  // the triangle's support, widened when shrinking
    const double ss = 1.0 / filterscale;
    const int64_t ksize = int64_t(std::ceil(support)) * 2 + 1;  // Pillow's widest window
    a.taps = std::min(ksize, in);
    a.first.resize(size_t(out));
    a.weights.assign(size_t(out * a.taps), 0);
    std::vector<double> w(static_cast<size_t>(ksize));  // (ksize) one window's weights
    for (int64_t i = 0; i < out; ++i) {
        const double center = (double(i) + 0.5) * scale;
        const int64_t lo = std::max<int64_t>(int64_t(center - support + 0.5), 0);
        const int64_t hi = std::min<int64_t>(int64_t(center + support + 0.5), in);
        const int64_t n = hi - lo;  // <= a.taps
        double sum = 0.0;
        for (int64_t t = 0; t < n; ++t) {
            w[size_t(t)] = triangle((double(t + lo) - center + 0.5) * ss);
            sum += w[size_t(t)];
        }
        const int64_t first = std::min(lo, in - a.taps);
        int32_t* fixed = a.weights.data() + i * a.taps + (lo - first);
        for (int64_t t = 0; t < n; ++t) {
            const double k = sum != 0.0 ? w[size_t(t)] / sum : w[size_t(t)];
            const double scaled = k * double(1 << kPrecisionBits);
            fixed[t] = int32_t(k < 0 ? -0.5 + scaled : 0.5 + scaled);
        }
        a.first[size_t(i)] = int32_t(first);
    }
    return a;
}

// dst (rows, a.out) from src (rows, a.in): Pillow's horizontal pass. Every window has the same
// width, so for the common widths (3 taps when enlarging) the tap loop unrolls completely.
template <int64_t kTaps>  // 0: a.taps, known only at run time
void resample_rows_taps(uint8_t* dst, const uint8_t* src, int64_t rows, const ResizeAxis& a) {
    const int64_t taps = kTaps ? kTaps : a.taps;
    for (int64_t r = 0; r < rows; ++r) {
        const uint8_t* s = src + r * a.in;
        uint8_t* d = dst + r * a.out;
        for (int64_t i = 0; i < a.out; ++i) {
            const int32_t* w = a.weights.data() + i * taps;
            const uint8_t* p = s + a.first[size_t(i)];
            int32_t acc = kHalf;
            for (int64_t t = 0; t < taps; ++t) acc += int32_t(p[t]) * w[t];
            d[i] = clip8(acc);
        }
    }
}

void resample_rows(uint8_t* dst, const uint8_t* src, int64_t rows, const ResizeAxis& a) {
    switch (a.taps) {
        case 2: return resample_rows_taps<2>(dst, src, rows, a);
        case 3: return resample_rows_taps<3>(dst, src, rows, a);
        case 5: return resample_rows_taps<5>(dst, src, rows, a);
        case 7: return resample_rows_taps<7>(dst, src, rows, a);
        default: return resample_rows_taps<0>(dst, src, rows, a);
    }
}

// dst (a.out, width) from src (a.in, width): Pillow's vertical pass. One output row's weights
// are the same across the row, so the sum runs along the row in blocks the compiler vectorises.
void resample_columns(uint8_t* dst, const uint8_t* src, int64_t width, const ResizeAxis& a) {
    constexpr int64_t kBlock = 256;
    int32_t acc[kBlock];  // (kBlock) partial sums of one output row
    for (int64_t i = 0; i < a.out; ++i) {
        const int32_t* w = a.weights.data() + i * a.taps;
        const uint8_t* s = src + int64_t(a.first[size_t(i)]) * width;
        uint8_t* d = dst + i * width;
        for (int64_t x0 = 0; x0 < width; x0 += kBlock) {
            const int64_t n = std::min(kBlock, width - x0);
            for (int64_t x = 0; x < n; ++x) acc[x] = kHalf;
            for (int64_t t = 0; t < a.taps; ++t) {
                const int32_t wt = w[t];
                if (wt == 0) continue;  // padding of a narrower window
                const uint8_t* row = s + t * width + x0;
                for (int64_t x = 0; x < n; ++x) acc[x] += int32_t(row[x]) * wt;
            }
            for (int64_t x = 0; x < n; ++x) d[x0 + x] = clip8(acc[x]);
        }
    }
}
}  // namespace

int64_t ResizePlan::scratch_bytes() const {
    return in_w != out_w && in_h != out_h ? in_h * out_w : 0;
}

ResizePlan make_resize_plan(int64_t in_h, int64_t in_w, int64_t out_h, int64_t out_w) {
    for (int64_t s : {in_h, in_w, out_h, out_w})
        if (s < 1 || s > (int64_t(1) << 24))
            throw std::invalid_argument("resize: sizes must be between 1 and 2^24, got " + std::to_string(in_h) + "x" +
                                        std::to_string(in_w) + " -> " + std::to_string(out_h) + "x" + std::to_string(out_w));
    ResizePlan plan;
    plan.in_h = in_h;
    plan.in_w = in_w;
    plan.out_h = out_h;
    plan.out_w = out_w;
    plan.rows = make_axis(in_h, out_h);
    plan.cols = make_axis(in_w, out_w);
    return plan;
}

// A pass whose size is unchanged is the identity; Pillow skips it, and so do we.
void resize_bilinear(uint8_t* dst, const uint8_t* src, int64_t channels, const ResizePlan& p, uint8_t* scratch) {
    const bool horizontal = p.in_w != p.out_w, vertical = p.in_h != p.out_h;
    const int64_t in_plane = p.in_h * p.in_w, out_plane = p.out_h * p.out_w;
    for (int64_t c = 0; c < channels; ++c) {
        const uint8_t* s = src + c * in_plane;  // (in_h, in_w)
        uint8_t* d = dst + c * out_plane;       // (out_h, out_w)
        if (horizontal && vertical) {
            resample_rows(scratch, s, p.in_h, p.cols);  // scratch (in_h, out_w)
            resample_columns(d, scratch, p.out_w, p.rows);
        } else if (horizontal) {
            resample_rows(d, s, p.in_h, p.cols);
        } else if (vertical) {
            resample_columns(d, s, p.in_w, p.rows);
        } else {
            std::memcpy(d, s, size_t(in_plane));
        }
    }
}

void resize_bilinear(uint8_t* dst, int64_t out_h, int64_t out_w, const uint8_t* src, int64_t channels, int64_t in_h,
                     int64_t in_w) {
    thread_local ResizePlan plan;
    thread_local std::vector<uint8_t> scratch;
    if (plan.in_h != in_h || plan.in_w != in_w || plan.out_h != out_h || plan.out_w != out_w) {
        plan = make_resize_plan(in_h, in_w, out_h, out_w);
        scratch.resize(size_t(plan.scratch_bytes()));
    }
    resize_bilinear(dst, src, channels, plan, scratch.data());
}

}  // namespace dn
