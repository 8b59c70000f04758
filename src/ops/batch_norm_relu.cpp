#include "ops/batch_norm_relu.h"

#include "ops/profiler.h"
#include "ops/streaming_store.h"

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <stdexcept>
#include <type_traits>
#include <vector>

namespace dn {

// Reductions over pixels run in blocks of kSumBlock pixels, one block per task, and the blocks'
// partial sums are then added in double in block order: the inner loops stream whole pixel rows
// at vector speed, long reductions stay accurate, and the result is the same for any thread count.
// (The backward's block sums are float: GCC 12 did not vectorise its conditional loop in double.)
static constexpr int64_t kSumBlock = 64;

// How far ahead, in pixels, the loops over a blocked (nchw16c) map prefetch each 16-channel
// plane's row. Such a map is one stream per plane and operand (up to 4 x 30 in densenet121's second
// block), more than the hardware prefetchers follow. Measured on Zen 4 (bf16 training, 224x224,
// batch 32, three alternated pairs): BN+ReLU backward 0.32-0.34 s -> 0.27-0.30 s a step at 32
// pixels ahead; 8, 16 and 64 gained less.
static constexpr int64_t kPrefetchPixels = 32;

// Per-channel working arrays (scale, shift, partial sums). The ops run on the caller's thread,
// one at a time; the buffer grows to the largest request in the first step, and later steps
// allocate nothing.
static float* channel_scratch(int64_t floats) {
    thread_local std::vector<float> scratch;
    if (int64_t(scratch.size()) < floats) scratch.resize(size_t(floats));
    return scratch.data();
}

// A thread's own row of `count` elements, 32-byte aligned: where a kernel stages a row that it then
// writes with streaming stores (ops/streaming_store.h). Allocated in the first step only.
template <class T>
static T* row_scratch(int64_t count) {
    struct alignas(kStreamingGrain) Grain {
        unsigned char bytes[kStreamingGrain];
    };
    thread_local std::vector<Grain> room;
    const size_t grains = (size_t(count) * sizeof(T) + kStreamingGrain - 1) / kStreamingGrain;
    if (room.size() < grains) room.resize(grains);
    return reinterpret_cast<T*>(room.data());
}

// A row of zeros at least `bytes` long: the gradient a pixel reads where none reaches it.
static const void* zero_row(size_t bytes) {
    thread_local std::vector<float> zeros;
    if (zeros.size() * sizeof(float) < bytes) zeros.assign((bytes + sizeof(float) - 1) / sizeof(float), 0.0f);
    return zeros.data();
}

namespace {
// Calls f(X{}) with the C++ element type of a view's tag, so that a kernel template is
// instantiated once per type it meets.
template <class F>
void with_type(DType t, F&& f) {
    if (t == DType::bf16) f(bf16{});
    else f(float{});
}

// One pixel's channels in a map of either layout: channel j lies at at[(j / 16) * stride + j % 16].
// In NHWC the stride is 16, which makes that at[j]; in nchw16c the 16-channel blocks are planes apart.
template <class T>
struct PixelRow {
    T* at;
    int64_t stride;
    T* segment(int64_t first) const { return at + first / kChannelBlock * stride; }
};

template <class T>
PixelRow<T> pixel_row(const FeatureMap& m, int64_t p) {
    if (m.layout == Layout::nhwc) return {m.pixel<T>(p), kChannelBlock};
    const int64_t plane = m.h * m.w, image = p / plane;
    return {static_cast<T*>(m.data) + image * m.c * plane + (p - image * plane) * kChannelBlock,
            plane * kChannelBlock};
}

// Calls f(segment) with the channels the kernels handle at a time, a compile-time constant: 0 for
// a whole pixel row, or kChannelBlock where a map is blocked (all its channel counts are multiples
// of it then), which makes each segment one vector.
template <class F>
void with_segment(std::initializer_list<const FeatureMap*> maps, F&& f) {
    for (const FeatureMap* m : maps)
        if (m && m->layout != Layout::nhwc) return f(std::integral_constant<int64_t, kChannelBlock>{});
    f(std::integral_constant<int64_t, 0>{});
}

// The row of dy that pixel p of x reads (DyPixels): its own, or the 2x2-pooled pixel covering it,
// or zeros where none does. Pooled gradients are NHWC, as are their x.
template <class T, DyPixels kDy>
PixelRow<const T> dy_row(const FeatureMap& dy, const FeatureMap& x, int64_t p, const T* zeros) {
    if constexpr (kDy == DyPixels::same_pixels) {
        return pixel_row<const T>(dy, p);
    } else {
        const int64_t plane = x.h * x.w, n = p / plane, r = p - n * plane, h = r / x.w, w = r - h * x.w;
        if (h / 2 >= dy.h || w / 2 >= dy.w) return {zeros, kChannelBlock};
        return {dy.pixel<const T>((n * dy.h + h / 2) * dy.w + w / 2), kChannelBlock};
    }
}

// What a pixel's dy is multiplied by: an average pool's input gradient is a quarter of its
// output's (exactly: a power of two).
template <DyPixels kDy>
inline constexpr float kDyScale = kDy == DyPixels::avg_pool_2x2 ? 0.25f : 1.0f;

// Whether `pooled` has the shape of full's 2x2 average pool, (N, H/2, W/2, C), both NHWC.
bool is_2x2_pool_of(const FeatureMap& pooled, const FeatureMap& full) {
    return pooled.layout == Layout::nhwc && full.layout == Layout::nhwc && pooled.n == full.n &&
           pooled.h == full.h / 2 && pooled.w == full.w / 2 && pooled.c == full.c;
}

// A pooled dy must be the NHWC (N, H/2, W/2, C) gradient of an NHWC x.
void check_dy_pixels(DyPixels dy_pixels, const FeatureMap& dy, const FeatureMap& x, const FeatureMap* dx) {
    if (dy_pixels == DyPixels::same_pixels) return;
    if (!is_2x2_pool_of(dy, x) || (dx && dx->layout != Layout::nhwc))
        throw std::logic_error("a 2x2-pooled gradient is the NHWC (N, H/2, W/2, C) gradient of an NHWC x");
}

// Blocks of pixels (kSumBlock) sum in double, as PyTorch accumulates: statistics off by a float
// rounding put the gradients of an ill-conditioned batch norm (few values per channel) twice as
// far from the exact ones as PyTorch's float32. Values are summed less their channel's value at
// pixel 0 (exactly, in double): E[d^2] - E[d]^2 then subtracts numbers near the variance, not
// near the squared mean, as PyTorch's two passes do.
template <class X>
void add_row(double* __restrict sum, double* __restrict sum_sq, const X* __restrict px, const double* __restrict shift,
             int64_t C) {
#pragma omp simd
    for (int64_t j = 0; j < C; ++j) {
        const double d = double(to_float(px[j])) - shift[j];
        sum[j] += d;
        sum_sq[j] += d * d;
    }
}

// O: float for batch_stats, double for batch_moments.
template <class X, class O>
void batch_stats_kernel(O* mean, O* var, const FeatureMap& x) {
    const int64_t C = x.c, P = x.pixels(), blocks = (P + kSumBlock - 1) / kSumBlock;
    thread_local std::vector<double> room;
    if (int64_t(room.size()) < (1 + 2 * blocks) * C) room.resize(size_t((1 + 2 * blocks) * C));
    double* shift = room.data();
    double* partial = shift + C;  // (blocks, 2, C): each pixel block's sums of d and d^2
    const PixelRow<const X> first = pixel_row<const X>(x, 0);
    for (int64_t j = 0; j < C; ++j) shift[j] = to_float(first.segment(j)[j % kChannelBlock]);
    with_segment({&x}, [&](auto segment) {
        constexpr int64_t S = decltype(segment)::value;
        const int64_t L = S ? S : C;
#pragma omp parallel for schedule(static)
        for (int64_t b = 0; b < blocks; ++b) {
            double* sum = partial + b * 2 * C;
            std::fill(sum, sum + 2 * C, 0.0);
            const int64_t end = std::min(P, (b + 1) * kSumBlock);
            for (int64_t p = b * kSumBlock; p < end; ++p) {
                const PixelRow<const X> row = pixel_row<const X>(x, p);
                for (int64_t s = 0; s < C; s += L) add_row(sum + s, sum + C + s, row.segment(s), shift + s, L);
            }
        }
    });
#pragma omp parallel for schedule(static)
    for (int64_t j = 0; j < C; ++j) {
        double s = 0.0, sq = 0.0;
        for (int64_t b = 0; b < blocks; ++b) {
            s += partial[b * 2 * C + j];
            sq += partial[b * 2 * C + C + j];
        }
        const double m = s / double(P);
        mean[j] = O(shift[j] + m);
        var[j] = O(std::max(0.0, sq / double(P) - m * m));
    }
}
}  // namespace

void batch_stats(float* mean, float* var, const FeatureMap& x) {
    PhaseTimer timer(Phase::bn_stats, 0.0, double(x.bytes()));
    with_type(x.type, [&](auto xt) { batch_stats_kernel<decltype(xt), float>(mean, var, x); });
}

void batch_moments(double* mean, double* var, const FeatureMap& x) {
    PhaseTimer timer(Phase::bn_stats, 0.0, double(x.bytes()));
    with_type(x.type, [&](auto xt) { batch_stats_kernel<decltype(xt), double>(mean, var, x); });
}

void update_running_stats(float* running_mean, float* running_var, const float* mean, const float* var,
                          int64_t channels, int64_t count) {
    PhaseTimer timer(Phase::bn_stats, 0.0, 4.0 * 6.0 * double(channels));
    const float unbias = count > 1 ? float(count) / float(count - 1) : 1.0f;
    for (int64_t j = 0; j < channels; ++j) {
        running_mean[j] = (1 - kBnMomentum) * running_mean[j] + kBnMomentum * mean[j];
        running_var[j] = (1 - kBnMomentum) * running_var[j] + kBnMomentum * var[j] * unbias;
    }
}

namespace {
// The forward's per-channel affine map, y = max(0, x * scale + shift), in the channel scratch.
struct NormalisationConstants {
    const float* scale;
    const float* shift;
};

NormalisationConstants normalisation_constants(int64_t C, const float* mean, const float* var, const float* gamma,
                                               const float* beta) {
    float* scale = channel_scratch(2 * C);
    float* shift = scale + C;
    for (int64_t j = 0; j < C; ++j) {
        const float rstd = 1.0f / std::sqrt(var[j] + kBnEps);
        scale[j] = gamma[j] * rstd;
        shift[j] = beta[j] - mean[j] * scale[j];
    }
    return {scale, shift};
}

template <class Y, class X>
void bn_relu_forward_kernel(const FeatureMap& y, const FeatureMap& x, const float* mean, const float* var,
                            const float* gamma, const float* beta) {
    const int64_t C = x.c, P = x.pixels();
    const NormalisationConstants k = normalisation_constants(C, mean, var, gamma, beta);
    const float *scale = k.scale, *shift = k.shift;
    const bool streams = streams_well(y);
    // Whole pixel rows, one after the other: the reads stream through memory. A large y is written
    // with streaming stores, each row (or segment) computed into a row of the thread's own first.
    with_segment({&x, &y}, [&](auto segment) {
        constexpr int64_t S = decltype(segment)::value;
        const int64_t L = S ? S : C;
#pragma omp parallel
        {
            Y* staged = streams ? row_scratch<Y>(L) : nullptr;
#pragma omp for schedule(static)
            for (int64_t p = 0; p < P; ++p) {
                const PixelRow<const X> rx = pixel_row<const X>(x, p);
                const PixelRow<Y> ry = pixel_row<Y>(y, p);
                for (int64_t s = 0; s < C; s += L) {
                    const X* px = rx.segment(s);
                    if constexpr (S != 0) __builtin_prefetch(px + kPrefetchPixels * S);  // as in the backward
                    Y* py = streams ? staged : ry.segment(s);
                    const float *sc = scale + s, *sh = shift + s;
#pragma omp simd
                    for (int64_t j = 0; j < L; ++j)
                        py[j] = from_float_not_nan<Y>(std::max(0.0f, to_float(px[j]) * sc[j] + sh[j]));
                    if (streams) stream_copy(ry.segment(s), staged, size_t(L) * sizeof(Y));
                }
            }
            if (streams) stream_fence();
        }
    });
}
}  // namespace

void bn_relu_forward(const FeatureMap& y, const FeatureMap& x, const float* mean, const float* var,
                     const float* gamma, const float* beta) {
    PhaseTimer timer(Phase::bn_relu_forward, 0.0, double(x.bytes() + y.bytes()));
    with_type(y.type, [&](auto yt) {
        with_type(x.type, [&](auto xt) {
            bn_relu_forward_kernel<decltype(yt), decltype(xt)>(y, x, mean, var, gamma, beta);
        });
    });
}

namespace {
// Each output pixel's four inputs normalised and rectified in f32, summed in row order, scaled by
// a quarter and rounded once to Y (in bf16 precision, unlike a pool of the rounded activation).
template <class Y, class X>
void bn_relu_avg_pool_forward_kernel(const FeatureMap& y, const FeatureMap& x, const float* mean, const float* var,
                                     const float* gamma, const float* beta) {
    const int64_t C = x.c, OH = y.h, OW = y.w, Q = y.pixels();
    const NormalisationConstants k = normalisation_constants(C, mean, var, gamma, beta);
    const float *scale = k.scale, *shift = k.shift;
#pragma omp parallel for schedule(static)
    for (int64_t q = 0; q < Q; ++q) {
        const int64_t n = q / (OH * OW), r = q - n * OH * OW, oh = r / OW, ow = r - oh * OW;
        const int64_t top = (n * x.h + 2 * oh) * x.w + 2 * ow;
        const X* a = x.pixel<const X>(top);
        const X* b = x.pixel<const X>(top + 1);
        const X* c = x.pixel<const X>(top + x.w);
        const X* d = x.pixel<const X>(top + x.w + 1);
        Y* py = y.pixel<Y>(q);
#pragma omp simd
        for (int64_t j = 0; j < C; ++j) {
            float sum = std::max(0.0f, to_float(a[j]) * scale[j] + shift[j]);
            sum += std::max(0.0f, to_float(b[j]) * scale[j] + shift[j]);
            sum += std::max(0.0f, to_float(c[j]) * scale[j] + shift[j]);
            sum += std::max(0.0f, to_float(d[j]) * scale[j] + shift[j]);
            py[j] = from_float_not_nan<Y>(0.25f * sum);  // a sum of ReLU outputs
        }
    }
}
}  // namespace

void bn_relu_avg_pool_forward(const FeatureMap& y, const FeatureMap& x, const float* mean, const float* var,
                              const float* gamma, const float* beta) {
    if (!is_2x2_pool_of(y, x))
        throw std::logic_error("bn_relu_avg_pool_forward: y is the NHWC (N, H/2, W/2, C) pool of an NHWC x");
    PhaseTimer timer(Phase::bn_relu_forward, 0.0, double(x.bytes() + y.bytes()));
    with_type(y.type, [&](auto yt) {
        with_type(x.type, [&](auto xt) {
            bn_relu_avg_pool_forward_kernel<decltype(yt), decltype(xt)>(y, x, mean, var, gamma, beta);
        });
    });
}

namespace {
// The per-channel constants both passes use.
struct BackwardConstants {
    float *scale, *shift, *rstd;  // scale = gamma * rstd, also dx's factor
};

BackwardConstants backward_constants(float* room, int64_t C, const float* mean, const float* var, const float* gamma,
                                     const float* beta) {
    BackwardConstants c{room, room + C, room + 2 * C};
    for (int64_t j = 0; j < C; ++j) {
        c.rstd[j] = 1.0f / std::sqrt(var[j] + kBnEps);
        c.scale[j] = gamma[j] * c.rstd[j];
        c.shift[j] = beta[j] - mean[j] * c.scale[j];
    }
    return c;
}

// Pass 1: with g = dy where the ReLU was open, dbeta = sum(g) and dgamma = sum(g * xhat), in
// blocks of pixels (kSumBlock) summed in float. With a Y other than void it also writes
// y = max(0, xhat * gamma + beta), as bn_relu_forward does; with kDefers it adds pass 2's
// pixel-dependent part, gamma * rstd * g, and the pending terms of the pass before, to the f32
// gradient *dx (DeferredInputTerms).
// O: float for the parameter gradients, double for the sums data-parallel processes add.
template <class O, class Y, bool kDefers, DyPixels kDy, class DY, class X>
void bn_relu_backward_params_kernel(const FeatureMap* y, const FeatureMap* dx, DeferredInputTerms pending, O* dgamma,
                                    O* dbeta, const FeatureMap& dy, const FeatureMap& x, const float* mean,
                                    const float* var, const float* gamma, const float* beta) {
    const int64_t C = x.c, P = x.pixels(), blocks = (P + kSumBlock - 1) / kSumBlock;
    const DY* zeros = static_cast<const DY*>(zero_row(size_t(C) * sizeof(DY)));
    float* room = channel_scratch(3 * C + 2 * blocks * C);
    const BackwardConstants c = backward_constants(room, C, mean, var, gamma, beta);
    const float *scale = c.scale, *shift = c.shift, *rstd = c.rstd;
    float* partial = room + 3 * C;  // (blocks, 2, C): each pixel block's sums of g and g * xhat
    const bool streams = y && streams_well(*y);
    with_segment({y, dx, &dy, &x}, [&](auto segment) {
        constexpr int64_t S = decltype(segment)::value;
        const int64_t L = S ? S : C;
#pragma omp parallel
        {
            Y* staged = nullptr;
            if constexpr (!std::is_void_v<Y>) staged = streams ? row_scratch<Y>(L) : nullptr;
#pragma omp for schedule(static)
            for (int64_t b = 0; b < blocks; ++b) {
                float* sum_g = partial + b * 2 * C;
                float* sum_gx = sum_g + C;
                std::fill(sum_g, sum_g + 2 * C, 0.0f);
                const int64_t end = std::min(P, (b + 1) * kSumBlock);
                for (int64_t p = b * kSumBlock; p < end; ++p) {
                    const PixelRow<const X> rx = pixel_row<const X>(x, p);
                    const PixelRow<const DY> rdy = dy_row<DY, kDy>(dy, x, p, zeros);
                    PixelRow<Y> ry{};
                    PixelRow<float> rdx{};
                    if constexpr (!std::is_void_v<Y>) ry = pixel_row<Y>(*y, p);
                    if constexpr (kDefers) rdx = pixel_row<float>(*dx, p);
                    for (int64_t s = 0; s < C; s += L) {
                        const X* px = rx.segment(s);
                        const DY* pdy = rdy.segment(s);
                        const float *sc = scale + s, *sh = shift + s, *mu = mean + s, *rs = rstd + s;
                        float *sg = sum_g + s, *sgx = sum_gx + s;
                        const float *pc = nullptr, *pxh = nullptr;
                        Y* py = nullptr;
                        float* pdx = nullptr;
                        if constexpr (!std::is_void_v<Y>) py = streams ? staged : ry.segment(s);
                        if constexpr (kDefers)
                            pdx = rdx.segment(s), pc = pending.constant + s, pxh = pending.per_xhat + s;
                        if constexpr (S != 0) {  // each plane's row kPrefetchPixels ahead
                            __builtin_prefetch(px + kPrefetchPixels * S);
                            __builtin_prefetch(pdy + kPrefetchPixels * S);
                            if constexpr (kDefers) __builtin_prefetch(pdx + kPrefetchPixels * S, 1);
                        }
                        // dy is loaded whether or not the ReLU was open: a conditional load would keep the
                        // compiler from vectorising (it may not read memory the source does not).
#pragma omp simd
                        for (int64_t j = 0; j < L; ++j) {
                            const float d = kDyScale<kDy> * to_float(pdy[j]), v = to_float(px[j]);
                            const float a = v * sc[j] + sh[j];
                            if constexpr (!std::is_void_v<Y>) py[j] = from_float_not_nan<Y>(std::max(0.0f, a));
                            const float g = a > 0.0f ? d : 0.0f, xhat = (v - mu[j]) * rs[j];
                            sg[j] += g;
                            sgx[j] += g * xhat;
                            // The layer after's pending terms first: they complete its centred gradient.
                            if constexpr (kDefers) pdx[j] = (pdx[j] + (pc[j] + xhat * pxh[j])) + sc[j] * g;
                        }
                        if constexpr (!std::is_void_v<Y>)
                            if (streams) stream_copy(ry.segment(s), staged, size_t(L) * sizeof(Y));
                    }
                }
            }
            if (streams) stream_fence();
        }
    });
#pragma omp parallel for schedule(static)
    for (int64_t j = 0; j < C; ++j) {
        double g = 0.0, gx = 0.0;
        for (int64_t b = 0; b < blocks; ++b) {
            g += double(partial[b * 2 * C + j]);
            gx += double(partial[b * 2 * C + C + j]);
        }
        dbeta[j] = O(g);
        dgamma[j] = O(gx);
    }
}

// Pass 2: dx = gamma * rstd * (g - mean(g) - xhat * mean(g * xhat)), the means from pass 1's sums.
template <DyPixels kDy, class DX, class DY, class X>
void bn_relu_backward_input_kernel(const FeatureMap& dx, Accumulate mode, const FeatureMap& dy, const FeatureMap& x,
                                   const float* mean, const float* var, const float* gamma, const float* beta,
                                   const float* dgamma, const float* dbeta, int64_t count) {
    const int64_t C = x.c, P = x.pixels();
    const DY* zeros = static_cast<const DY*>(zero_row(size_t(C) * sizeof(DY)));
    float* room = channel_scratch(5 * C);
    const BackwardConstants c = backward_constants(room, C, mean, var, gamma, beta);
    const float *scale = c.scale, *shift = c.shift, *rstd = c.rstd;
    float* mean_g = room + 3 * C;
    float* mean_gx = room + 4 * C;
    for (int64_t j = 0; j < C; ++j) {
        mean_g[j] = dbeta[j] / float(count);
        mean_gx[j] = dgamma[j] / float(count);
    }
    with_segment({&dx, &dy, &x}, [&](auto segment) {
        constexpr int64_t S = decltype(segment)::value;
        const int64_t L = S ? S : C;
#pragma omp parallel for schedule(static)
        for (int64_t p = 0; p < P; ++p) {
            const PixelRow<const X> rx = pixel_row<const X>(x, p);
            const PixelRow<const DY> rdy = dy_row<DY, kDy>(dy, x, p, zeros);
            const PixelRow<DX> rdx = pixel_row<DX>(dx, p);
            for (int64_t s = 0; s < C; s += L) {
                const X* px = rx.segment(s);
                const DY* pdy = rdy.segment(s);
                DX* pdx = rdx.segment(s);
                if constexpr (S != 0) {  // as in pass 1
                    __builtin_prefetch(px + kPrefetchPixels * S);
                    __builtin_prefetch(pdy + kPrefetchPixels * S);
                    __builtin_prefetch(pdx + kPrefetchPixels * S, 1);
                }
                const float *sc = scale + s, *sh = shift + s, *mu = mean + s, *rs = rstd + s;
                const float *mg = mean_g + s, *mgx = mean_gx + s;
                if (mode == Accumulate::add) {
#pragma omp simd
                    for (int64_t j = 0; j < L; ++j) {
                        const float d = kDyScale<kDy> * to_float(pdy[j]), v = to_float(px[j]);
                        const float g = v * sc[j] + sh[j] > 0.0f ? d : 0.0f;
                        pdx[j] = from_float<DX>(to_float(pdx[j]) + sc[j] * (g - mg[j] - (v - mu[j]) * rs[j] * mgx[j]));
                    }
                } else {
#pragma omp simd
                    for (int64_t j = 0; j < L; ++j) {
                        const float d = kDyScale<kDy> * to_float(pdy[j]), v = to_float(px[j]);
                        const float g = v * sc[j] + sh[j] > 0.0f ? d : 0.0f;
                        pdx[j] = from_float<DX>(sc[j] * (g - mg[j] - (v - mu[j]) * rs[j] * mgx[j]));
                    }
                }
            }
        }
    });
}
}  // namespace

namespace {
// Pass 1 on the views' element types; O: the sums' type.
template <class O>
void backward_params(O* dgamma, O* dbeta, const FeatureMap& dy, const FeatureMap& x, const float* mean,
                     const float* var, const float* gamma, const float* beta, Pass1Outputs also, DyPixels dy_pixels) {
    const FeatureMap *y = also.recomputed, *dx = also.deferred_dx;
    check_dy_pixels(dy_pixels, dy, x, dx);
    if (y) check_dy_pixels(dy_pixels, dy, x, y);
    if (dx && dx->type != DType::f32) throw std::logic_error("pass 1 defers into f32 gradients only");
    if (dx && !(also.pending.constant && also.pending.per_xhat))
        throw std::logic_error("pass 1 defers with the pending terms of the pass before (zeros for none)");
    const double bytes = double(x.bytes() + dy.bytes() + (y ? y->bytes() : 0) + (dx ? 2 * dx->bytes() : 0));
    PhaseTimer timer(Phase::bn_relu_backward, 0.0, bytes);
    auto run = [&](auto yt, auto defers, auto dyt, auto xt) {
        using Y = std::conditional_t<std::is_same_v<decltype(yt), std::nullptr_t>, void, decltype(yt)>;
        with_dy_pixels(dy_pixels, [&](auto dy_at) {
            bn_relu_backward_params_kernel<O, Y, decltype(defers)::value, decltype(dy_at)::value, decltype(dyt),
                                           decltype(xt)>(y, dx, also.pending, dgamma, dbeta, dy, x, mean, var, gamma,
                                                         beta);
        });
    };
    with_type(dy.type, [&](auto dyt) {
        with_type(x.type, [&](auto xt) {
            auto with_defer = [&](auto yt) {
                if (dx) run(yt, std::true_type{}, dyt, xt);
                else run(yt, std::false_type{}, dyt, xt);
            };
            if (!y) with_defer(nullptr);
            else with_type(y->type, with_defer);
        });
    });
}
}  // namespace

void bn_relu_backward_params(float* dgamma, float* dbeta, const FeatureMap& dy, const FeatureMap& x, const float* mean,
                             const float* var, const float* gamma, const float* beta, Pass1Outputs also,
                             DyPixels dy_pixels) {
    backward_params(dgamma, dbeta, dy, x, mean, var, gamma, beta, also, dy_pixels);
}

void bn_relu_backward_param_sums(double* dgamma, double* dbeta, const FeatureMap& dy, const FeatureMap& x,
                                 const float* mean, const float* var, const float* gamma, const float* beta,
                                 Pass1Outputs also, DyPixels dy_pixels) {
    backward_params(dgamma, dbeta, dy, x, mean, var, gamma, beta, also, dy_pixels);
}

void bn_relu_backward_input(const FeatureMap& dx, Accumulate mode, const FeatureMap& dy, const FeatureMap& x,
                            const float* mean, const float* var, const float* gamma, const float* beta,
                            const float* dgamma, const float* dbeta, int64_t count, DyPixels dy_pixels) {
    check_dy_pixels(dy_pixels, dy, x, &dx);
    // A gradient that many layers add into must keep f32's precision.
    if (mode == Accumulate::add && dx.type != DType::f32)
        throw std::logic_error("bn_relu_backward accumulates into f32 gradients only");
    // Reads x and dy, and writes dx (reading it too when adding).
    const double bytes = double(x.bytes() + dy.bytes()) + double(dx.bytes()) * (mode == Accumulate::add ? 2.0 : 1.0);
    PhaseTimer timer(Phase::bn_relu_backward, 0.0, bytes);
    with_type(dx.type, [&](auto dxt) {
        with_type(dy.type, [&](auto dyt) {
            with_type(x.type, [&](auto xt) {
                with_dy_pixels(dy_pixels, [&](auto dy_at) {
                    bn_relu_backward_input_kernel<decltype(dy_at)::value, decltype(dxt), decltype(dyt), decltype(xt)>(
                        dx, mode, dy, x, mean, var, gamma, beta, dgamma, dbeta, count);
                });
            });
        });
    });
}

void bn_relu_backward(const FeatureMap& dx, Accumulate mode, float* dgamma, float* dbeta, const FeatureMap& dy,
                      const FeatureMap& x, const float* mean, const float* var, const float* gamma,
                      const float* beta) {
    bn_relu_backward_params(dgamma, dbeta, dy, x, mean, var, gamma, beta);
    bn_relu_backward_input(dx, mode, dy, x, mean, var, gamma, beta, dgamma, dbeta, x.pixels());
}

void bn_relu_defer_input_terms(DeferredInputTerms terms, int64_t channels, const float* var, const float* gamma,
                               const float* dgamma, const float* dbeta, int64_t count) {
    // The same float scale and means pass 2 computes.
    for (int64_t j = 0; j < channels; ++j) {
        const float scale = gamma[j] * (1.0f / std::sqrt(var[j] + kBnEps));
        terms.constant[j] = -scale * (dbeta[j] / float(count));
        terms.per_xhat[j] = -scale * (dgamma[j] / float(count));
    }
}

namespace {
template <class OUT, class X>
void apply_input_terms_kernel(const FeatureMap& out, const FeatureMap& grad, const FeatureMap& x, const float* mean,
                              const float* var, DeferredInputTerms terms) {
    const int64_t C = x.c, P = x.pixels();
    float* rstd = channel_scratch(C);
    const float *constant = terms.constant, *per_xhat = terms.per_xhat;
    for (int64_t j = 0; j < C; ++j) rstd[j] = 1.0f / std::sqrt(var[j] + kBnEps);
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < P; ++p) {
        const X* px = x.pixel<X>(p);
        const float* pg = grad.pixel<float>(p);
        OUT* po = out.pixel<OUT>(p);
#pragma omp simd
        for (int64_t j = 0; j < C; ++j)
            po[j] = from_float<OUT>(pg[j] + (constant[j] + (to_float(px[j]) - mean[j]) * rstd[j] * per_xhat[j]));
    }
}
}  // namespace

void bn_relu_apply_input_terms(const FeatureMap& out, const FeatureMap& grad, const FeatureMap& x, const float* mean,
                               const float* var, DeferredInputTerms terms) {
    if (grad.type != DType::f32) throw std::logic_error("deferred input terms apply to f32 gradients only");
    PhaseTimer timer(Phase::copy, 0.0, double(out.bytes() + grad.bytes() + x.bytes()));
    with_type(out.type, [&](auto ot) {
        with_type(x.type, [&](auto xt) {
            apply_input_terms_kernel<decltype(ot), decltype(xt)>(out, grad, x, mean, var, terms);
        });
    });
}

}  // namespace dn
