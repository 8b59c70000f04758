#include "cuda/batch_norm_relu.h"

#include "cuda/cuda_check.h"
#include "cuda/element.cuh"
#include "cuda/launch.h"

#include <stdexcept>
#include <type_traits>

namespace dn::cuda {

namespace {
// Reductions over pixels: one block per chunk of kChunk pixels (its 8 rows of threads take every
// 8th pixel, then add in row order), then a block of kFinalRows rows per 32 channels adds the
// chunks (row r every kFinalRows-th chunk from r, then the rows in order): a fixed order, so the
// result is the same from run to run, and 32 ways parallel where batch 256 at 56x56 has 3,136
// chunks per channel.
constexpr int64_t kChunk = 256;
constexpr int kFinalRows = 32;

dim3 final_block() { return dim3(kChannelTile, kFinalRows); }
unsigned final_grid(int64_t C) { return unsigned((C + kChannelTile - 1) / kChannelTile); }

int64_t chunks_of(int64_t pixels) { return (pixels + kChunk - 1) / kChunk; }

void require_nhwc(const FeatureMap& m, const char* what) {
    if (m.layout != Layout::nhwc) throw std::logic_error(std::string("cuda batch norm: ") + what + " must be NHWC");
}

template <class T>
T* typed(const FeatureMap& m) {
    return static_cast<T*>(m.data);
}

struct ChannelConstants {
    float scale, shift, rstd;
};

__device__ ChannelConstants constants_of(int64_t c, const float* mean, const float* var, const float* gamma,
                                         const float* beta) {
    const float rstd = 1.0f / sqrtf(var[c] + kBnEps);
    const float scale = gamma[c] * rstd;
    return {scale, beta[c] - mean[c] * scale, rstd};
}

// Where a pixel's dy comes from (DyPixels, as on the CPU): its own row of dy, or a quarter of the
// pooled pixel covering it when dy is a 2x2 average pool's gradient (zero where none covers it).
struct PooledDy {
    int64_t h, w;    // x's height and width
    int64_t oh, ow;  // dy's: h / 2, w / 2
};

template <DyPixels kDy, class DY>
__device__ float dy_at(const DY* dy, int64_t lddy, int64_t p, int64_t c, const PooledDy& g) {
    if constexpr (kDy == DyPixels::same_pixels) {
        return to_f32(dy[p * lddy + c]);
    } else {
        const int64_t plane = g.h * g.w, n = p / plane, r = p - n * plane, h = r / g.w, w = r - h * g.w;
        if (h / 2 >= g.oh || w / 2 >= g.ow) return 0.0f;
        return 0.25f * to_f32(dy[((n * g.oh + h / 2) * g.ow + w / 2) * lddy + c]);
    }
}

// Block-wide sum over threadIdx.y (Rows of them) of two values per channel, in row order; the
// result is valid in row 0.
template <int Rows = kRowTile, class T>
__device__ void sum_rows(T& a, T& b) {
    __shared__ T room[2][Rows][kChannelTile];
    room[0][threadIdx.y][threadIdx.x] = a;
    room[1][threadIdx.y][threadIdx.x] = b;
    __syncthreads();
    if (threadIdx.y == 0)
        for (int r = 1; r < Rows; ++r) a += room[0][r][threadIdx.x], b += room[1][r][threadIdx.x];
}

// partial (chunks, 2, C): per chunk, the sums of d and d^2 with d = x - (the channel's value at
// pixel 0), in double.
template <class X>
__global__ void stats_partial(double* partial, const X* x, int64_t ld, int64_t P, int64_t C) {
    const int64_t c = int64_t(blockIdx.x) * kChannelTile + threadIdx.x, chunk = blockIdx.y;
    double s = 0.0, sq = 0.0;
    if (c < C) {
        const double shift = to_f32(x[c]);
        const int64_t end = min(P, (chunk + 1) * kChunk);
        for (int64_t p = chunk * kChunk + threadIdx.y; p < end; p += kRowTile) {
            const double d = double(to_f32(x[p * ld + c])) - shift;
            s += d;
            sq += d * d;
        }
    }
    sum_rows(s, sq);
    if (threadIdx.y == 0 && c < C) {
        partial[(chunk * 2) * C + c] = s;
        partial[(chunk * 2 + 1) * C + c] = sq;
    }
}

// Stat: float (the statistics normalised with) or double (a replica's moments before rounding,
// which the replicas combine: combine_moments).
template <class Stat, class X>
__global__ void stats_final(Stat* mean, Stat* var, const double* partial, const X* x, int64_t chunks, int64_t P,
                            int64_t C) {
    const int64_t c = int64_t(blockIdx.x) * kChannelTile + threadIdx.x;
    double s = 0.0, sq = 0.0;
    if (c < C)
        for (int64_t k = threadIdx.y; k < chunks; k += kFinalRows)
            s += partial[(k * 2) * C + c], sq += partial[(k * 2 + 1) * C + c];
    sum_rows<kFinalRows>(s, sq);
    if (threadIdx.y != 0 || c >= C) return;
    const double m = s / double(P);
    mean[c] = Stat(double(to_f32(x[c])) + m);
    var[c] = Stat(fmax(0.0, sq / double(P) - m * m));
}

// As DataParallel::combine_batch_moments, channel by channel: the replicas' moments weighted by
// their counts, added in replica order in double.
__global__ void combine_moments_kernel(float* mean, float* var, const double* gathered, const int64_t* shard_images,
                                       int replicas, int64_t per_image, int64_t C) {
    const int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (c >= C) return;
    int64_t total = 0;
    double m = 0.0;
    for (int r = 0; r < replicas; ++r) {
        total += shard_images[r] * per_image;
        m += double(shard_images[r] * per_image) * gathered[r * 2 * C + c];
    }
    m /= double(total);
    double v = 0.0;
    for (int r = 0; r < replicas; ++r) {
        const double d = gathered[r * 2 * C + c] - m;
        v += double(shard_images[r] * per_image) * (gathered[r * 2 * C + C + c] + d * d);
    }
    mean[c] = float(m);
    var[c] = float(v / double(total));
}

template <class Y, class X>
__global__ void bn_relu_forward_kernel(Y* y, int64_t ldy, const X* x, int64_t ldx, int64_t P, int64_t C,
                                       const float* mean, const float* var, const float* gamma, const float* beta) {
    const int64_t c = int64_t(blockIdx.x) * kChannelTile + threadIdx.x;
    if (c >= C) return;
    const ChannelConstants k = constants_of(c, mean, var, gamma, beta);
    for (int64_t p = int64_t(blockIdx.y) * kRowTile + threadIdx.y; p < P; p += int64_t(gridDim.y) * kRowTile)
        y[p * ldy + c] = from_f32<Y>(fmaxf(0.0f, to_f32(x[p * ldx + c]) * k.scale + k.shift));
}

// y (N, H/2, W/2) = the 2x2 average pool of max(0, BN(x)): each output's four inputs normalised
// and rectified in f32, summed in row order and scaled by a quarter, rounded once, as the CPU's
// bn_relu_avg_pool_forward.
template <class Y, class X>
__global__ void bn_relu_avg_pool_kernel(Y* y, int64_t ldy, const X* x, int64_t ldx, PooledDy g, int64_t Q, int64_t C,
                                        const float* mean, const float* var, const float* gamma, const float* beta) {
    const int64_t c = int64_t(blockIdx.x) * kChannelTile + threadIdx.x;
    if (c >= C) return;
    const ChannelConstants k = constants_of(c, mean, var, gamma, beta);
    for (int64_t q = int64_t(blockIdx.y) * kRowTile + threadIdx.y; q < Q; q += int64_t(gridDim.y) * kRowTile) {
        const int64_t n = q / (g.oh * g.ow), r = q - n * g.oh * g.ow, oh = r / g.ow, ow = r - oh * g.ow;
        const int64_t top = (n * g.h + 2 * oh) * g.w + 2 * ow;
        float sum = fmaxf(0.0f, to_f32(x[top * ldx + c]) * k.scale + k.shift);
        sum += fmaxf(0.0f, to_f32(x[(top + 1) * ldx + c]) * k.scale + k.shift);
        sum += fmaxf(0.0f, to_f32(x[(top + g.w) * ldx + c]) * k.scale + k.shift);
        sum += fmaxf(0.0f, to_f32(x[(top + g.w + 1) * ldx + c]) * k.scale + k.shift);
        y[q * ldy + c] = from_f32<Y>(0.25f * sum);
    }
}

// partial (chunks, 2, C) in float: per chunk, sum(g) and sum(g * xhat).
template <DyPixels kDy, class DY, class X>
__global__ void backward_partial(float* partial, const DY* dy, int64_t lddy, PooledDy pooled, const X* x, int64_t ldx,
                                 int64_t P, int64_t C, const float* mean, const float* var, const float* gamma,
                                 const float* beta) {
    const int64_t c = int64_t(blockIdx.x) * kChannelTile + threadIdx.x, chunk = blockIdx.y;
    float sg = 0.0f, sgx = 0.0f;
    if (c < C) {
        const ChannelConstants k = constants_of(c, mean, var, gamma, beta);
        const int64_t end = min(P, (chunk + 1) * kChunk);
        for (int64_t p = chunk * kChunk + threadIdx.y; p < end; p += kRowTile) {
            const float v = to_f32(x[p * ldx + c]);
            const float g = v * k.scale + k.shift > 0.0f ? dy_at<kDy>(dy, lddy, p, c, pooled) : 0.0f;
            sg += g;
            sgx += g * ((v - mean[c]) * k.rstd);
        }
    }
    sum_rows(sg, sgx);
    if (threadIdx.y == 0 && c < C) {
        partial[(chunk * 2) * C + c] = sg;
        partial[(chunk * 2 + 1) * C + c] = sgx;
    }
}

__global__ void backward_final(float* dgamma, float* dbeta, const float* partial, int64_t chunks, int64_t C) {
    const int64_t c = int64_t(blockIdx.x) * kChannelTile + threadIdx.x;
    double g = 0.0, gx = 0.0;
    if (c < C)
        for (int64_t k = threadIdx.y; k < chunks; k += kFinalRows)
            g += double(partial[(k * 2) * C + c]), gx += double(partial[(k * 2 + 1) * C + c]);
    sum_rows<kFinalRows>(g, gx);
    if (threadIdx.y != 0 || c >= C) return;
    dbeta[c] = float(g);
    dgamma[c] = float(gx);
}

template <DyPixels kDy, class DX, class DY, class X>
__global__ void backward_input_kernel(DX* dx, int64_t lddx, bool add, const DY* dy, int64_t lddy, PooledDy pooled,
                                      const X* x, int64_t ldx, int64_t P, int64_t C, const float* mean, const float* var,
                                      const float* gamma, const float* beta, const float* dgamma, const float* dbeta,
                                      float count) {
    const int64_t c = int64_t(blockIdx.x) * kChannelTile + threadIdx.x;
    if (c >= C) return;
    const ChannelConstants k = constants_of(c, mean, var, gamma, beta);
    const float mean_g = dbeta[c] / count, mean_gx = dgamma[c] / count;
    for (int64_t p = int64_t(blockIdx.y) * kRowTile + threadIdx.y; p < P; p += int64_t(gridDim.y) * kRowTile) {
        const float v = to_f32(x[p * ldx + c]);
        const float g = v * k.scale + k.shift > 0.0f ? dy_at<kDy>(dy, lddy, p, c, pooled) : 0.0f;
        const float d = k.scale * (g - mean_g - (v - mean[c]) * k.rstd * mean_gx);
        dx[p * lddx + c] = from_f32<DX>(add ? to_f32(dx[p * lddx + c]) + d : d);
    }
}

__global__ void running_stats_kernel(float* running_mean, float* running_var, const float* mean, const float* var,
                                     int64_t C, float unbias) {
    const int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (c >= C) return;
    running_mean[c] = (1 - kBnMomentum) * running_mean[c] + kBnMomentum * mean[c];
    running_var[c] = (1 - kBnMomentum) * running_var[c] + kBnMomentum * var[c] * unbias;
}

unsigned channel_threads_grid(int64_t C) { return unsigned((C + 255) / 256); }

// The pooled geometry of dy for x (DyPixels::avg_pool_2x2: dy must be x's (N, H/2, W/2, C)).
PooledDy pooled_dy(DyPixels dy_pixels, const FeatureMap& dy, const FeatureMap& x) {
    if (dy_pixels == DyPixels::same_pixels) {
        if (dy.pixels() != x.pixels() || dy.c != x.c) throw std::logic_error("cuda batch norm: dy and x differ in shape");
        return {x.h, x.w, x.h, x.w};
    }
    if (dy.n != x.n || dy.h != x.h / 2 || dy.w != x.w / 2 || dy.c != x.c)
        throw std::logic_error("cuda batch norm: a 2x2-pooled dy is (N, H/2, W/2, C) of x");
    return {x.h, x.w, dy.h, dy.w};
}
}  // namespace

void update_running_stats(float* running_mean, float* running_var, const float* mean, const float* var,
                          int64_t channels, int64_t count, cudaStream_t stream) {
    const float unbias = count > 1 ? float(count) / float(count - 1) : 1.0f;
    running_stats_kernel<<<channel_threads_grid(channels), 256, 0, stream>>>(running_mean, running_var, mean, var,
                                                                            channels, unbias);
    CUDA_CHECK(cudaGetLastError());
}

size_t reduction_scratch_bytes(int64_t pixels, int64_t channels) {
    return size_t(chunks_of(pixels) * 2 * channels) * sizeof(double);
}

namespace {
template <class Stat>
void statistics(Stat* mean, Stat* var, const FeatureMap& x, void* scratch, cudaStream_t stream) {
    require_nhwc(x, "x");
    const int64_t P = x.pixels(), C = x.c, chunks = chunks_of(P);
    if (chunks > 65535) throw std::invalid_argument("cuda batch_stats: more than 16.7M pixels");
    auto* partial = static_cast<double*>(scratch);
    with_element_type(x.type, [&](auto xt) {
        using X = typename decltype(xt)::type;
        stats_partial<<<dim3(unsigned((C + kChannelTile - 1) / kChannelTile), unsigned(chunks)), channel_block(), 0,
                        stream>>>(partial, typed<const X>(x), x.ld, P, C);
        stats_final<<<final_grid(C), final_block(), 0, stream>>>(mean, var, partial, typed<const X>(x), chunks, P, C);
    });
    CUDA_CHECK(cudaGetLastError());
}
}  // namespace

void batch_stats(float* mean, float* var, const FeatureMap& x, void* scratch, cudaStream_t stream) {
    statistics(mean, var, x, scratch, stream);
}

void batch_moments(double* moments, const FeatureMap& x, void* scratch, cudaStream_t stream) {
    statistics(moments, moments + x.c, x, scratch, stream);
}

void combine_moments(float* mean, float* var, const double* gathered, const int64_t* shard_images, int replicas,
                     int64_t per_image, int64_t channels, cudaStream_t stream) {
    combine_moments_kernel<<<channel_threads_grid(channels), 256, 0, stream>>>(mean, var, gathered, shard_images,
                                                                              replicas, per_image, channels);
    CUDA_CHECK(cudaGetLastError());
}

void bn_relu_forward(const FeatureMap& y, const FeatureMap& x, const float* mean, const float* var, const float* gamma,
                     const float* beta, cudaStream_t stream) {
    require_nhwc(x, "x");
    require_nhwc(y, "y");
    with_element_type(y.type, [&](auto yt) {
        with_element_type(x.type, [&](auto xt) {
            using Y = typename decltype(yt)::type;
            using X = typename decltype(xt)::type;
            bn_relu_forward_kernel<<<channel_grid(x.pixels(), x.c), channel_block(), 0, stream>>>(
                typed<Y>(y), y.ld, typed<const X>(x), x.ld, x.pixels(), x.c, mean, var, gamma, beta);
        });
    });
    CUDA_CHECK(cudaGetLastError());
}

void bn_relu_avg_pool_forward(const FeatureMap& y, const FeatureMap& x, const float* mean, const float* var,
                              const float* gamma, const float* beta, cudaStream_t stream) {
    require_nhwc(x, "x");
    require_nhwc(y, "y");
    const PooledDy g = pooled_dy(DyPixels::avg_pool_2x2, y, x);
    with_element_type(y.type, [&](auto yt) {
        with_element_type(x.type, [&](auto xt) {
            using Y = typename decltype(yt)::type;
            using X = typename decltype(xt)::type;
            bn_relu_avg_pool_kernel<<<channel_grid(y.pixels(), x.c), channel_block(), 0, stream>>>(
                typed<Y>(y), y.ld, typed<const X>(x), x.ld, g, y.pixels(), x.c, mean, var, gamma, beta);
        });
    });
    CUDA_CHECK(cudaGetLastError());
}

void bn_relu_backward_params(float* dgamma, float* dbeta, const FeatureMap& dy, const FeatureMap& x, const float* mean,
                             const float* var, const float* gamma, const float* beta, void* scratch,
                             cudaStream_t stream, DyPixels dy_pixels) {
    require_nhwc(x, "x");
    require_nhwc(dy, "dy");
    const int64_t P = x.pixels(), C = x.c, chunks = chunks_of(P);
    if (chunks > 65535) throw std::invalid_argument("cuda bn_relu_backward_params: more than 16.7M pixels");
    const PooledDy pooled = pooled_dy(dy_pixels, dy, x);
    auto* partial = static_cast<float*>(scratch);
    with_dy_pixels(dy_pixels, [&](auto dy_at_pixels) {
        with_element_type(dy.type, [&](auto dyt) {
            with_element_type(x.type, [&](auto xt) {
                using DY = typename decltype(dyt)::type;
                using X = typename decltype(xt)::type;
                backward_partial<decltype(dy_at_pixels)::value>
                    <<<dim3(unsigned((C + kChannelTile - 1) / kChannelTile), unsigned(chunks)), channel_block(), 0,
                       stream>>>(partial, typed<const DY>(dy), dy.ld, pooled, typed<const X>(x), x.ld, P, C, mean, var,
                                 gamma, beta);
            });
        });
    });
    backward_final<<<final_grid(C), final_block(), 0, stream>>>(dgamma, dbeta, partial, chunks, C);
    CUDA_CHECK(cudaGetLastError());
}

void bn_relu_backward_input(const FeatureMap& dx, Accumulate mode, const FeatureMap& dy, const FeatureMap& x,
                            const float* mean, const float* var, const float* gamma, const float* beta,
                            const float* dgamma, const float* dbeta, int64_t count, cudaStream_t stream,
                            DyPixels dy_pixels) {
    require_nhwc(x, "x");
    require_nhwc(dy, "dy");
    require_nhwc(dx, "dx");
    // A gradient that many layers add into keeps f32's precision, as on the CPU.
    if (mode == Accumulate::add && dx.type != DType::f32)
        throw std::logic_error("cuda bn_relu_backward accumulates into f32 gradients only");
    if (dx.pixels() != x.pixels() || dx.c != x.c) throw std::logic_error("cuda batch norm: dx and x differ in shape");
    const PooledDy pooled = pooled_dy(dy_pixels, dy, x);
    with_dy_pixels(dy_pixels, [&](auto dy_at_pixels) {
        with_element_type(dx.type, [&](auto dxt) {
            with_element_type(dy.type, [&](auto dyt) {
                with_element_type(x.type, [&](auto xt) {
                    using DX = typename decltype(dxt)::type;
                    using DY = typename decltype(dyt)::type;
                    using X = typename decltype(xt)::type;
                    backward_input_kernel<decltype(dy_at_pixels)::value>
                        <<<channel_grid(x.pixels(), x.c), channel_block(), 0, stream>>>(
                            typed<DX>(dx), dx.ld, mode == Accumulate::add, typed<const DY>(dy), dy.ld, pooled,
                            typed<const X>(x), x.ld, x.pixels(), x.c, mean, var, gamma, beta, dgamma, dbeta,
                            float(count));
                });
            });
        });
    });
    CUDA_CHECK(cudaGetLastError());
}

}  // namespace dn::cuda
