#include "ops/batch_norm_relu.h"

#include "ops/profiler.h"

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

// Per-channel working arrays (scale, shift, partial sums). The ops run on the caller's thread,
// one at a time; the buffer grows to the largest request in the first step, and later steps
// allocate nothing.
static float* channel_scratch(int64_t floats) {
    thread_local std::vector<float> scratch;
    if (int64_t(scratch.size()) < floats) scratch.resize(size_t(floats));
    return scratch.data();
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
    for (int64_t j = 0; j < C; ++j) shift[j] = to_float(x.pixel<X>(0)[j]);
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < blocks; ++b) {
        double* sum = partial + b * 2 * C;
        std::fill(sum, sum + 2 * C, 0.0);
        const int64_t end = std::min(P, (b + 1) * kSumBlock);
        for (int64_t p = b * kSumBlock; p < end; ++p) add_row(sum, sum + C, x.pixel<X>(p), shift, C);
    }
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
template <class Y, class X>
void bn_relu_forward_kernel(const FeatureMap& y, const FeatureMap& x, const float* mean, const float* var,
                            const float* gamma, const float* beta) {
    const int64_t C = x.c, P = x.pixels();
    float* scale = channel_scratch(2 * C);
    float* shift = scale + C;
    for (int64_t j = 0; j < C; ++j) {
        const float rstd = 1.0f / std::sqrt(var[j] + kBnEps);
        scale[j] = gamma[j] * rstd;
        shift[j] = beta[j] - mean[j] * scale[j];
    }
    // Whole pixel rows, one after the other: the reads stream through memory.
    with_segment({&x, &y}, [&](auto segment) {
        constexpr int64_t S = decltype(segment)::value;
        const int64_t L = S ? S : C;
#pragma omp parallel for schedule(static)
        for (int64_t p = 0; p < P; ++p) {
            const PixelRow<const X> rx = pixel_row<const X>(x, p);
            const PixelRow<Y> ry = pixel_row<Y>(y, p);
            for (int64_t s = 0; s < C; s += L) {
                const X* px = rx.segment(s);
                Y* py = ry.segment(s);
                const float *sc = scale + s, *sh = shift + s;
#pragma omp simd
                for (int64_t j = 0; j < L; ++j)
                    py[j] = from_float<Y>(std::max(0.0f, to_float(px[j]) * sc[j] + sh[j]));
            }
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
// y = max(0, xhat * gamma + beta), as bn_relu_forward does.
// O: float for the parameter gradients, double for bn_relu_backward_param_sums.
template <class O, class Y, class DY, class X>
void bn_relu_backward_params_kernel(const FeatureMap* y, O* dgamma, O* dbeta, const FeatureMap& dy,
                                    const FeatureMap& x, const float* mean, const float* var, const float* gamma,
                                    const float* beta) {
    const int64_t C = x.c, P = x.pixels(), blocks = (P + kSumBlock - 1) / kSumBlock;
    float* room = channel_scratch(3 * C + 2 * blocks * C);
    const BackwardConstants c = backward_constants(room, C, mean, var, gamma, beta);
    const float *scale = c.scale, *shift = c.shift, *rstd = c.rstd;
    float* partial = room + 3 * C;  // (blocks, 2, C): each pixel block's sums of g and g * xhat
    with_segment({y, &dy, &x}, [&](auto segment) {
        constexpr int64_t S = decltype(segment)::value;
        const int64_t L = S ? S : C;
#pragma omp parallel for schedule(static)
        for (int64_t b = 0; b < blocks; ++b) {
            float* sum_g = partial + b * 2 * C;
            float* sum_gx = sum_g + C;
            std::fill(sum_g, sum_g + 2 * C, 0.0f);
            const int64_t end = std::min(P, (b + 1) * kSumBlock);
            for (int64_t p = b * kSumBlock; p < end; ++p) {
                const PixelRow<const X> rx = pixel_row<const X>(x, p);
                const PixelRow<const DY> rdy = pixel_row<const DY>(dy, p);
                for (int64_t s = 0; s < C; s += L) {
                    const X* px = rx.segment(s);
                    const DY* pdy = rdy.segment(s);
                    const float *sc = scale + s, *sh = shift + s, *mu = mean + s, *rs = rstd + s;
                    float *sg = sum_g + s, *sgx = sum_gx + s;
                    // dy is loaded whether or not the ReLU was open: a conditional load would keep the
                    // compiler from vectorising (it may not read memory the source does not).
                    if constexpr (std::is_void_v<Y>) {
#pragma omp simd
                        for (int64_t j = 0; j < L; ++j) {
                            const float d = to_float(pdy[j]), v = to_float(px[j]);
                            const float g = v * sc[j] + sh[j] > 0.0f ? d : 0.0f;
                            sg[j] += g;
                            sgx[j] += g * ((v - mu[j]) * rs[j]);
                        }
                    } else {
                        Y* py = pixel_row<Y>(*y, p).segment(s);
#pragma omp simd
                        for (int64_t j = 0; j < L; ++j) {
                            const float d = to_float(pdy[j]), v = to_float(px[j]);
                            const float a = v * sc[j] + sh[j];
                            py[j] = from_float<Y>(std::max(0.0f, a));
                            const float g = a > 0.0f ? d : 0.0f;
                            sg[j] += g;
                            sgx[j] += g * ((v - mu[j]) * rs[j]);
                        }
                    }
                }
            }
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
template <class DX, class DY, class X>
void bn_relu_backward_input_kernel(const FeatureMap& dx, Accumulate mode, const FeatureMap& dy, const FeatureMap& x,
                                   const float* mean, const float* var, const float* gamma, const float* beta,
                                   const float* dgamma, const float* dbeta, int64_t count) {
    const int64_t C = x.c, P = x.pixels();
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
            const PixelRow<const DY> rdy = pixel_row<const DY>(dy, p);
            const PixelRow<DX> rdx = pixel_row<DX>(dx, p);
            for (int64_t s = 0; s < C; s += L) {
                const X* px = rx.segment(s);
                const DY* pdy = rdy.segment(s);
                DX* pdx = rdx.segment(s);
                const float *sc = scale + s, *sh = shift + s, *mu = mean + s, *rs = rstd + s;
                const float *mg = mean_g + s, *mgx = mean_gx + s;
                if (mode == Accumulate::add) {
#pragma omp simd
                    for (int64_t j = 0; j < L; ++j) {
                        const float d = to_float(pdy[j]), v = to_float(px[j]);
                        const float g = v * sc[j] + sh[j] > 0.0f ? d : 0.0f;
                        pdx[j] = from_float<DX>(to_float(pdx[j]) + sc[j] * (g - mg[j] - (v - mu[j]) * rs[j] * mgx[j]));
                    }
                } else {
#pragma omp simd
                    for (int64_t j = 0; j < L; ++j) {
                        const float d = to_float(pdy[j]), v = to_float(px[j]);
                        const float g = v * sc[j] + sh[j] > 0.0f ? d : 0.0f;
                        pdx[j] = from_float<DX>(sc[j] * (g - mg[j] - (v - mu[j]) * rs[j] * mgx[j]));
                    }
                }
            }
        }
    });
}
}  // namespace

void bn_relu_backward_params(float* dgamma, float* dbeta, const FeatureMap& dy, const FeatureMap& x, const float* mean,
                             const float* var, const float* gamma, const float* beta) {
    PhaseTimer timer(Phase::bn_relu_backward, 0.0, double(x.bytes() + dy.bytes()));
    with_type(dy.type, [&](auto dyt) {
        with_type(x.type, [&](auto xt) {
            bn_relu_backward_params_kernel<float, void, decltype(dyt), decltype(xt)>(nullptr, dgamma, dbeta, dy, x, mean, var,
                                                                             gamma, beta);
        });
    });
}

void bn_relu_backward_params_recomputing(const FeatureMap& y, float* dgamma, float* dbeta, const FeatureMap& dy,
                                         const FeatureMap& x, const float* mean, const float* var, const float* gamma,
                                         const float* beta) {
    PhaseTimer timer(Phase::bn_relu_backward, 0.0, double(x.bytes() + dy.bytes() + y.bytes()));
    with_type(y.type, [&](auto yt) {
        with_type(dy.type, [&](auto dyt) {
            with_type(x.type, [&](auto xt) {
                bn_relu_backward_params_kernel<float, decltype(yt), decltype(dyt), decltype(xt)>(&y, dgamma, dbeta, dy, x, mean,
                                                                                         var, gamma, beta);
            });
        });
    });
}

void bn_relu_backward_param_sums(double* dgamma, double* dbeta, const FeatureMap* y, const FeatureMap& dy,
                                 const FeatureMap& x, const float* mean, const float* var, const float* gamma,
                                 const float* beta) {
    PhaseTimer timer(Phase::bn_relu_backward, 0.0, double(x.bytes() + dy.bytes() + (y ? y->bytes() : 0)));
    with_type(dy.type, [&](auto dyt) {
        with_type(x.type, [&](auto xt) {
            using DY = decltype(dyt);
            using X = decltype(xt);
            if (!y) {
                bn_relu_backward_params_kernel<double, void, DY, X>(nullptr, dgamma, dbeta, dy, x, mean, var, gamma, beta);
                return;
            }
            with_type(y->type, [&](auto yt) {
                bn_relu_backward_params_kernel<double, decltype(yt), DY, X>(y, dgamma, dbeta, dy, x, mean, var, gamma,
                                                                            beta);
            });
        });
    });
}

void bn_relu_backward_input(const FeatureMap& dx, Accumulate mode, const FeatureMap& dy, const FeatureMap& x,
                            const float* mean, const float* var, const float* gamma, const float* beta,
                            const float* dgamma, const float* dbeta, int64_t count) {
    // A gradient that many layers add into must keep f32's precision.
    if (mode == Accumulate::add && dx.type != DType::f32)
        throw std::logic_error("bn_relu_backward accumulates into f32 gradients only");
    // Reads x and dy, and writes dx (reading it too when adding).
    const double bytes = double(x.bytes() + dy.bytes()) + double(dx.bytes()) * (mode == Accumulate::add ? 2.0 : 1.0);
    PhaseTimer timer(Phase::bn_relu_backward, 0.0, bytes);
    with_type(dx.type, [&](auto dxt) {
        with_type(dy.type, [&](auto dyt) {
            with_type(x.type, [&](auto xt) {
                bn_relu_backward_input_kernel<decltype(dxt), decltype(dyt), decltype(xt)>(dx, mode, dy, x, mean, var,
                                                                                         gamma, beta, dgamma, dbeta,
                                                                                         count);
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

}  // namespace dn
