#include "ops/batch_norm_relu.h"

#include "ops/profiler.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace dn {

// batch_stats splits the channels into chunks of 16 (one cache line of a pixel); its reductions
// run over all pixels of a chunk in a fixed order, so results do not depend on the thread count.
static constexpr int64_t kLanes = 16;

static int64_t chunk_count(int64_t c) { return (c + kLanes - 1) / kLanes; }

// Pixels summed in float before the sums are added in double: long reductions stay accurate
// while the inner loop runs at vector speed (a loop converting every element to double is not
// vectorised by GCC 12).
static constexpr int64_t kSumBlock = 64;

// Per-channel working arrays (scale, shift, partial sums). The ops run on the caller's thread,
// one at a time; the buffer grows to the largest request in the first step, and later steps
// allocate nothing.
static float* channel_scratch(int64_t floats) {
    thread_local std::vector<float> scratch;
    if (int64_t(scratch.size()) < floats) scratch.resize(size_t(floats));
    return scratch.data();
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
    const int64_t C = x.c, P = x.pixels();
    float* scale = channel_scratch(2 * C);
    float* shift = scale + C;
    for (int64_t j = 0; j < C; ++j) {
        const float rstd = 1.0f / std::sqrt(var[j] + kBnEps);
        scale[j] = gamma[j] * rstd;
        shift[j] = beta[j] - mean[j] * scale[j];
    }
    // Whole pixel rows, one after the other: the reads stream through memory.
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < P; ++p) {
        const float* px = x.pixel(p);
        float* py = y.pixel(p);
#pragma omp simd
        for (int64_t j = 0; j < C; ++j) py[j] = std::max(0.0f, px[j] * scale[j] + shift[j]);
    }
}

void bn_relu_backward(const FeatureMap& dx, Accumulate mode, float* dgamma, float* dbeta, const FeatureMap& dy,
                      const FeatureMap& x, const float* mean, const float* var, const float* gamma,
                      const float* beta) {
    // Pass 1 reads x and dy; pass 2 reads them again and writes dx (reading it too when adding).
    PhaseTimer timer(Phase::bn_relu_backward, 0.0, 4.0 * (mode == Accumulate::add ? 6.0 : 5.0) * double(x.floats()));
    const int64_t C = x.c, P = x.pixels(), blocks = (P + kSumBlock - 1) / kSumBlock;
    float* scale = channel_scratch(4 * C + 2 * blocks * C);
    float* shift = scale + C;
    float* rstd = shift + C;
    float* k = rstd + C;
    float* partial = k + C;  // (blocks, 2, C): each pixel block's sums of g and g * xhat
    for (int64_t j = 0; j < C; ++j) {
        rstd[j] = 1.0f / std::sqrt(var[j] + kBnEps);
        scale[j] = gamma[j] * rstd[j];
        shift[j] = beta[j] - mean[j] * scale[j];
        k[j] = gamma[j] * rstd[j];
    }

    // Pass 1: with g = dy where the ReLU was open, dbeta = sum(g) and dgamma = sum(g * xhat).
    // Each block of kSumBlock pixels sums in float, vectorised over whole pixel rows; the blocks
    // are then added in double, in block order, so the result does not depend on the threads.
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < blocks; ++b) {
        float* sum_g = partial + b * 2 * C;
        float* sum_gx = sum_g + C;
        std::fill(sum_g, sum_g + 2 * C, 0.0f);
        const int64_t end = std::min(P, (b + 1) * kSumBlock);
        for (int64_t p = b * kSumBlock; p < end; ++p) {
            const float* px = x.pixel(p);
            const float* pdy = dy.pixel(p);
            // dy is loaded whether or not the ReLU was open: a conditional load would keep the
            // compiler from vectorising (it may not read memory the source does not).
#pragma omp simd
            for (int64_t j = 0; j < C; ++j) {
                const float d = pdy[j], v = px[j];
                const float g = v * scale[j] + shift[j] > 0.0f ? d : 0.0f;
                sum_g[j] += g;
                sum_gx[j] += g * ((v - mean[j]) * rstd[j]);
            }
        }
    }
#pragma omp parallel for schedule(static)
    for (int64_t j = 0; j < C; ++j) {
        double g = 0.0, gx = 0.0;
        for (int64_t b = 0; b < blocks; ++b) {
            g += double(partial[b * 2 * C + j]);
            gx += double(partial[b * 2 * C + C + j]);
        }
        dbeta[j] = float(g);
        dgamma[j] = float(gx);
    }

    // Pass 2: dx = gamma * rstd * (g - mean(g) - xhat * mean(g * xhat)).
    float* mean_g = partial;  // the partial sums are spent; reuse their room
    float* mean_gx = partial + C;
    for (int64_t j = 0; j < C; ++j) {
        mean_g[j] = dbeta[j] / float(P);
        mean_gx[j] = dgamma[j] / float(P);
    }
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < P; ++p) {
        const float* px = x.pixel(p);
        const float* pdy = dy.pixel(p);
        float* pdx = dx.pixel(p);
        if (mode == Accumulate::add) {
#pragma omp simd
            for (int64_t j = 0; j < C; ++j) {
                const float d = pdy[j], v = px[j];
                const float g = v * scale[j] + shift[j] > 0.0f ? d : 0.0f;
                pdx[j] += k[j] * (g - mean_g[j] - (v - mean[j]) * rstd[j] * mean_gx[j]);
            }
        } else {
#pragma omp simd
            for (int64_t j = 0; j < C; ++j) {
                const float d = pdy[j], v = px[j];
                const float g = v * scale[j] + shift[j] > 0.0f ? d : 0.0f;
                pdx[j] = k[j] * (g - mean_g[j] - (v - mean[j]) * rstd[j] * mean_gx[j]);
            }
        }
    }
}

}  // namespace dn
