// defines: cuda::reduction_scratch_bytes, cuda::batch_stats, cuda::batch_moments,
//          cuda::combine_moments, cuda::update_running_stats, cuda::bn_relu_forward,
//          cuda::bn_relu_avg_pool_forward, cuda::bn_relu_backward_params, cuda::bn_relu_backward_input
//
// ops/batch_norm_relu.h on the GPU: the same functions over the same strided NHWC views
// (FeatureMap), with device pointers and a stream. The same arithmetic as the CPU's where it
// decides the result's accuracy: statistics shifted by each channel's first value and summed in
// double, pass 1 of the backward summed in float over 256-pixel chunks and the chunks in double,
// each in a fixed order, so a result does not depend on scheduling. Views of either activation
// type (f32 or bf16, NHWC), read and computed in f32, written rounded to their type; as on the
// CPU, a gradient added into is f32.
#pragma once
#include "ops/batch_norm_relu.h"  // kBnEps, Accumulate: shared with the CPU engine
#include "tensor/feature_map.h"

#include <cuda_runtime.h>

#include <cstddef>

namespace dn::cuda {

// Device memory the reductions below need for a view of `pixels` x `channels` (part of the plan).
size_t reduction_scratch_bytes(int64_t pixels, int64_t channels);

// Biased batch mean and variance of every channel (mean, var: device, (C)).
void batch_stats(float* mean, float* var, const FeatureMap& x, void* scratch, cudaStream_t stream);

// Synchronised batch norm, as the CPU's (model/replica_sync.h): each replica's batch_stats before
// rounding, moments (2, C) in double, means then variances; and the global batch's mean and var
// (C) from every replica's, gathered (replicas, 2, C), replica r's over shard_images[r] (device,
// (replicas)) images of per_image pixels, added in replica order (DataParallel::combine_batch_moments).
void batch_moments(double* moments, const FeatureMap& x, void* scratch, cudaStream_t stream);
void combine_moments(float* mean, float* var, const double* gathered, const int64_t* shard_images, int replicas,
                     int64_t per_image, int64_t channels, cudaStream_t stream);

// running = (1 - momentum) * running + momentum * batch, with the unbiased variance (count values).
void update_running_stats(float* running_mean, float* running_var, const float* mean, const float* var,
                          int64_t channels, int64_t count, cudaStream_t stream);

// y = max(0, (x - mean) / sqrt(var + eps) * gamma + beta).
void bn_relu_forward(const FeatureMap& y, const FeatureMap& x, const float* mean, const float* var, const float* gamma,
                     const float* beta, cudaStream_t stream);

// y = the 2x2 average pool of bn_relu_forward's output, in one pass (a transition's norm, ReLU and
// pool, as the CPU's): y (N, H/2, W/2, C) dense, the full-size activation never written.
void bn_relu_avg_pool_forward(const FeatureMap& y, const FeatureMap& x, const float* mean, const float* var,
                              const float* gamma, const float* beta, cudaStream_t stream);

// Pass 1: dbeta = sum(g), dgamma = sum(g * xhat) with g = dy where the ReLU was open (assigned).
// dy_pixels: avg_pool_2x2 reads dy as bn_relu_avg_pool_forward's output gradient (ops/batch_norm_relu.h).
void bn_relu_backward_params(float* dgamma, float* dbeta, const FeatureMap& dy, const FeatureMap& x, const float* mean,
                             const float* var, const float* gamma, const float* beta, void* scratch,
                             cudaStream_t stream, DyPixels dy_pixels = DyPixels::same_pixels);

// Pass 2: dx (assigned or added to) from dy, x and pass 1's sums over `count` pixels.
void bn_relu_backward_input(const FeatureMap& dx, Accumulate mode, const FeatureMap& dy, const FeatureMap& x,
                            const float* mean, const float* var, const float* gamma, const float* beta,
                            const float* dgamma, const float* dbeta, int64_t count, cudaStream_t stream,
                            DyPixels dy_pixels = DyPixels::same_pixels);

}  // namespace dn::cuda
