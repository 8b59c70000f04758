#include "ops/batch_norm_relu.h"

#include "ops/profiler.h"

#include <algorithm>
#include <cmath>

namespace dn {

// Work is split into chunks of 16 channels (one cache line of a pixel) times blocks of pixels.
// Reductions run over all pixels of one chunk in a fixed order, so results do not depend on the
// thread count.
static constexpr int64_t kLanes = 16;
static constexpr int64_t kPixelBlock = 1024;

static int64_t chunk_count(int64_t c) { return (c + kLanes - 1) / kLanes; }

namespace {
struct ChunkAffine {
    float scale[kLanes], shift[kLanes];
    int64_t first, width;

    ChunkAffine(int64_t chunk, int64_t c, const float* mean, const float* var, const float* gamma,
                const float* beta) {
        first = chunk * kLanes;
        width = std::min(kLanes, c - first);
        for (int64_t j = 0; j < width; ++j) {
            float rstd = 1.0f / std::sqrt(var[first + j] + kBnEps);
            scale[j] = gamma[first + j] * rstd;
            shift[j] = beta[first + j] - mean[first + j] * scale[j];
        }
    }
};
}  // namespace

// Sums g = (ReLU open ? dy : 0) and g * xhat over every pixel of one chunk of channels: in float
// over blocks of kSumBlock pixels (one vector register per sum), then in double across blocks,
// so long reductions stay accurate while the inner loop runs at vector speed. (A loop that
// converts to double per element is not vectorised by GCC 12.) kWidth = kLanes for a full chunk,
// 0 for the last, narrower one (its width is then read at run time).
static constexpr int64_t kSumBlock = 64;

template <int64_t kWidth>
static void reduce_relu_grad(double* sum_g, double* sum_gx, const FeatureMap& x, const FeatureMap& dy,
                             const ChunkAffine& a, const float* m, const float* rstd) {
    const int64_t width = kWidth ? kWidth : a.width, P = x.pixels();
    for (int64_t p0 = 0; p0 < P; p0 += kSumBlock) {
        float block_g[kLanes] = {}, block_gx[kLanes] = {};
        const int64_t end = std::min(P, p0 + kSumBlock);
        for (int64_t p = p0; p < end; ++p) {
            const float* px = x.pixel(p) + a.first;
            const float* pdy = dy.pixel(p) + a.first;
            // dy is loaded whether or not the ReLU was open: a conditional load would keep the
            // compiler from vectorising (it may not read memory the source does not).
#pragma omp simd
            for (int64_t j = 0; j < width; ++j) {
                const float d = pdy[j], v = px[j];
                const float g = v * a.scale[j] + a.shift[j] > 0.0f ? d : 0.0f;
                block_g[j] += g;
                block_gx[j] += g * ((v - m[j]) * rstd[j]);
            }
        }
        for (int64_t j = 0; j < width; ++j) {
            sum_g[j] += double(block_g[j]);
            sum_gx[j] += double(block_gx[j]);
        }
    }
}

void batch_stats(float* mean, float* var, const FeatureMap& x) {
    PhaseTimer timer(Phase::bn_stats, 0.0, 4.0 * double(x.floats()));
    const int64_t P = x.pixels();
#pragma omp parallel for schedule(static)
    for (int64_t chunk = 0; chunk < chunk_count(x.c); ++chunk) {
        const int64_t first = chunk * kLanes, width = std::min(kLanes, x.c - first);
        double sum[kLanes] = {}, sum_sq[kLanes] = {};
        for (int64_t p = 0; p < P; ++p) {
            const float* px = x.pixel(p) + first;
#pragma omp simd
            for (int64_t j = 0; j < width; ++j) {
                double v = px[j];
                sum[j] += v;
                sum_sq[j] += v * v;
            }
        }
        for (int64_t j = 0; j < width; ++j) {
            double m = sum[j] / double(P);
            mean[first + j] = float(m);
            var[first + j] = float(std::max(0.0, sum_sq[j] / double(P) - m * m));
        }
    }
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

void bn_relu_forward(const FeatureMap& y, const FeatureMap& x, const float* mean, const float* var,
                     const float* gamma, const float* beta) {
    PhaseTimer timer(Phase::bn_relu_forward, 0.0, 4.0 * 2.0 * double(x.floats()));
    const int64_t P = x.pixels(), blocks = (P + kPixelBlock - 1) / kPixelBlock;
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t chunk = 0; chunk < chunk_count(x.c); ++chunk)
        for (int64_t block = 0; block < blocks; ++block) {
            ChunkAffine a(chunk, x.c, mean, var, gamma, beta);
            const int64_t end = std::min(P, (block + 1) * kPixelBlock);
            for (int64_t p = block * kPixelBlock; p < end; ++p) {
                const float* px = x.pixel(p) + a.first;
                float* py = y.pixel(p) + a.first;
#pragma omp simd
                for (int64_t j = 0; j < a.width; ++j) py[j] = std::max(0.0f, px[j] * a.scale[j] + a.shift[j]);
            }
        }
}

void bn_relu_backward(const FeatureMap& dx, Accumulate mode, float* dgamma, float* dbeta, const FeatureMap& dy,
                      const FeatureMap& x, const float* mean, const float* var, const float* gamma,
                      const float* beta) {
    // Pass 1 reads x and dy; pass 2 reads them again and writes dx (reading it too when adding).
    PhaseTimer timer(Phase::bn_relu_backward, 0.0, 4.0 * (mode == Accumulate::add ? 6.0 : 5.0) * double(x.floats()));
    const int64_t P = x.pixels(), blocks = (P + kPixelBlock - 1) / kPixelBlock;

    // Pass 1: with g = dy where the ReLU was open, dbeta = sum(g) and dgamma = sum(g * xhat).
#pragma omp parallel for schedule(static)
    for (int64_t chunk = 0; chunk < chunk_count(x.c); ++chunk) {
        ChunkAffine a(chunk, x.c, mean, var, gamma, beta);
        float m[kLanes] = {}, rstd[kLanes] = {};
        for (int64_t j = 0; j < a.width; ++j) {
            m[j] = mean[a.first + j];
            rstd[j] = 1.0f / std::sqrt(var[a.first + j] + kBnEps);
        }
        double sum_g[kLanes] = {}, sum_gx[kLanes] = {};
        if (a.width == kLanes)
            reduce_relu_grad<kLanes>(sum_g, sum_gx, x, dy, a, m, rstd);
        else
            reduce_relu_grad<0>(sum_g, sum_gx, x, dy, a, m, rstd);
        for (int64_t j = 0; j < a.width; ++j) {
            dbeta[a.first + j] = float(sum_g[j]);
            dgamma[a.first + j] = float(sum_gx[j]);
        }
    }

    // Pass 2: dx = gamma * rstd * (g - mean(g) - xhat * mean(g * xhat)).
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t chunk = 0; chunk < chunk_count(x.c); ++chunk)
        for (int64_t block = 0; block < blocks; ++block) {
            ChunkAffine a(chunk, x.c, mean, var, gamma, beta);
            float m[kLanes], rstd[kLanes], k[kLanes], mean_g[kLanes], mean_gx[kLanes];
            for (int64_t j = 0; j < a.width; ++j) {
                const int64_t ch = a.first + j;
                m[j] = mean[ch];
                rstd[j] = 1.0f / std::sqrt(var[ch] + kBnEps);
                k[j] = gamma[ch] * rstd[j];
                mean_g[j] = dbeta[ch] / float(P);
                mean_gx[j] = dgamma[ch] / float(P);
            }
            const int64_t end = std::min(P, (block + 1) * kPixelBlock);
            for (int64_t p = block * kPixelBlock; p < end; ++p) {
                const float* px = x.pixel(p) + a.first;
                const float* pdy = dy.pixel(p) + a.first;
                float* pdx = dx.pixel(p) + a.first;
                if (mode == Accumulate::add) {
#pragma omp simd
                    for (int64_t j = 0; j < a.width; ++j) {
                        float g = px[j] * a.scale[j] + a.shift[j] > 0.0f ? pdy[j] : 0.0f;
                        pdx[j] += k[j] * (g - mean_g[j] - (px[j] - m[j]) * rstd[j] * mean_gx[j]);
                    }
                } else {
#pragma omp simd
                    for (int64_t j = 0; j < a.width; ++j) {
                        float g = px[j] * a.scale[j] + a.shift[j] > 0.0f ? pdy[j] : 0.0f;
                        pdx[j] = k[j] * (g - mean_g[j] - (px[j] - m[j]) * rstd[j] * mean_gx[j]);
                    }
                }
            }
        }
}

}  // namespace dn
