// defines: batch_stats, batch_moments, update_running_stats, bn_relu_forward, bn_relu_backward, bn_relu_backward_params,
//          bn_relu_backward_params_recomputing, bn_relu_backward_param_sums, bn_relu_backward_input
//
// BatchNorm2d followed by ReLU, as one pass over memory, on the engine's own kernels.
// These read strided channel views (a dense layer's input prefix inside its block buffer),
// which oneDNN's batch norm would only run on its reference kernel. The statistics are separate
// from the normalisation because in a dense block every later layer normalises a channel with the
// same batch mean and variance: they are computed once, when the channel is produced.
//
// Shapes: x, y, dx, dy are (N,H,W,C) views; mean, var, gamma, beta, dgamma, dbeta are (C).
// Layouts: NHWC, or for the normalisation and its backward (not the statistics) also nchw16c,
// the layout of oneDNN's Winograd kernels, which a convolution then reads or writes as it is.
// Types: each view is f32 or bf16 (its tag). In bf16 precision y is the bf16 operand of the next
// convolution, and dy, or dx where it is assigned, a convolution's bf16 gradient; arithmetic and
// statistics are f32 whatever the storage.
#pragma once
#include "tensor/feature_map.h"

namespace dn {

inline constexpr float kBnEps = 1e-5f;
inline constexpr float kBnMomentum = 0.1f;

// Biased batch mean and variance of every channel, over all N*H*W pixels.
void batch_stats(float* mean, float* var, const FeatureMap& x);
// The same before their rounding to float: data-parallel processes combine these, so that the
// combination rounds to the float that one process computing the whole batch gets.
void batch_moments(double* mean, double* var, const FeatureMap& x);

// running = (1 - momentum) * running + momentum * batch, with the unbiased variance, as PyTorch.
void update_running_stats(float* running_mean, float* running_var, const float* mean, const float* var,
                          int64_t channels, int64_t count);

// y = max(0, (x - mean) / sqrt(var + eps) * gamma + beta). mean/var are the batch statistics
// in training and the running ones in evaluation.
void bn_relu_forward(const FeatureMap& y, const FeatureMap& x, const float* mean, const float* var,
                     const float* gamma, const float* beta);

enum class Accumulate { assign, add };

// Backward through the ReLU and a batch-statistics normalisation. dgamma and dbeta are assigned;
// dx is assigned or added to, since in a dense block many layers send gradient to one channel.
// It is bn_relu_backward_params then bn_relu_backward_input (two passes over x and dy).
void bn_relu_backward(const FeatureMap& dx, Accumulate mode, float* dgamma, float* dbeta, const FeatureMap& dy,
                      const FeatureMap& x, const float* mean, const float* var, const float* gamma, const float* beta);

// Pass 1: dgamma and dbeta (assigned), which pass 2 needs.
void bn_relu_backward_params(float* dgamma, float* dbeta, const FeatureMap& dy, const FeatureMap& x, const float* mean,
                             const float* var, const float* gamma, const float* beta);
// Pass 1 that also writes y = bn_relu_forward(x), bit for bit: the memory-efficient backward
// needs the forward output again (for conv1's backward-weights) just as pass 1 reads the same x.
void bn_relu_backward_params_recomputing(const FeatureMap& y, float* dgamma, float* dbeta, const FeatureMap& dy,
                                         const FeatureMap& x, const float* mean, const float* var, const float* gamma,
                                         const float* beta);
// Pass 1's sums before their rounding to float, for data-parallel processes to add (a batch of
// 64-pixel blocks summed in double, as one process sums them), and optionally writing y as
// bn_relu_backward_params_recomputing does (y: nullptr for none).
void bn_relu_backward_param_sums(double* dgamma, double* dbeta, const FeatureMap* y, const FeatureMap& dy,
                                 const FeatureMap& x, const float* mean, const float* var, const float* gamma,
                                 const float* beta);
// Pass 2: dx from dy, x and pass 1's dgamma and dbeta, which are sums over `count` pixels: this
// x's own (x.pixels()), or, with batch norm synchronised across data-parallel processes, the sums
// of every process's pass 1 over the whole batch's pixels.
void bn_relu_backward_input(const FeatureMap& dx, Accumulate mode, const FeatureMap& dy, const FeatureMap& x,
                            const float* mean, const float* var, const float* gamma, const float* beta,
                            const float* dgamma, const float* dbeta, int64_t count);

}  // namespace dn
