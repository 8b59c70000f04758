// defines: batch_stats, batch_moments, update_running_stats, bn_relu_forward, bn_relu_avg_pool_forward,
//          bn_relu_backward, DyPixels, Pass1Outputs,
//          bn_relu_backward_params, bn_relu_backward_param_sums, bn_relu_backward_input, DeferredInputTerms,
//          bn_relu_defer_input_terms, bn_relu_apply_input_terms
//
// BatchNorm2d followed by ReLU, as one pass over memory, on the engine's own kernels.
// These read strided channel views (a dense layer's input prefix inside its block buffer),
// which oneDNN's batch norm would only run on its reference kernel. The statistics are separate
// from the normalisation because in a dense block every later layer normalises a channel with the
// same batch mean and variance: they are computed once, when the channel is produced.
//
// Shapes: x, y, dx, dy are (N,H,W,C) views; mean, var, gamma, beta, dgamma, dbeta are (C).
// Layouts: any view may be NHWC or nchw16c (tensor/feature_map.h), the blocked layout a
// convolution's operand may have (Conv2d's activations, take_blocked_src), except those of
// bn_relu_apply_input_terms, which are NHWC.
// Types: each view is f32 or bf16 (its tag). In bf16 precision y is the bf16 operand of the next
// convolution, and dy, or dx where it is assigned, a convolution's bf16 gradient; arithmetic and
// statistics are f32 whatever the storage.
#pragma once
#include "tensor/feature_map.h"

#include <type_traits>

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

// bn_relu_forward followed by nn.AvgPool2d(2, stride 2) (floor mode: an odd map's last row or
// column is dropped), in one pass: y is (N, H/2, W/2, C), and the full-size activation is never
// written. x and y are NHWC. A transition pools before its convolution (see TransitionPlan).
void bn_relu_avg_pool_forward(const FeatureMap& y, const FeatureMap& x, const float* mean, const float* var,
                              const float* gamma, const float* beta);

enum class Accumulate { assign, add };

// Which pixels dy holds. same_pixels: x's. avg_pool_2x2: dy is the gradient of the 2x2 average
// pool of bn_relu_avg_pool_forward, (N, H/2, W/2, C) NHWC; the backward reads a quarter of it at
// each of the four pixels it covers (zero where no pooled pixel covers one) instead of a pool
// backward's full-size gradient, which is then never written.
enum class DyPixels { same_pixels, avg_pool_2x2 };

// Calls f(std::integral_constant<DyPixels, ...>{}) with dy_pixels, so that a kernel template is
// instantiated for each (both engines' kernels use it).
template <class F>
void with_dy_pixels(DyPixels dy_pixels, F&& f) {
    if (dy_pixels == DyPixels::avg_pool_2x2) f(std::integral_constant<DyPixels, DyPixels::avg_pool_2x2>{});
    else f(std::integral_constant<DyPixels, DyPixels::same_pixels>{});
}

// Backward through the ReLU and a batch-statistics normalisation. dgamma and dbeta are assigned;
// dx is assigned or added to, since in a dense block many layers send gradient to one channel.
// It is bn_relu_backward_params then bn_relu_backward_input (two passes over x and dy).
void bn_relu_backward(const FeatureMap& dx, Accumulate mode, float* dgamma, float* dbeta, const FeatureMap& dy,
                      const FeatureMap& x, const float* mean, const float* var, const float* gamma, const float* beta);

// A dense block's norm1 backward in one pass, not two. Every layer of a block normalises a channel
// with the same batch statistics, so in each layer's input gradient
//     dx = scale * (g - mean(g) - xhat * mean(g * xhat)),    scale = gamma * rstd,
// only scale * g needs pass 1's sums of the layer's own pixels' gradients; the rest,
// -scale * mean(g) + xhat * (-scale * mean(g * xhat)), is a per-channel affine map of xhat, which
// is the same for every layer: its two terms follow from pass 1's sums over `count` pixels
// (bn_relu_defer_input_terms). Pass 1 then adds scale * g to the block's gradient and leaves the
// layer's terms pending; the next layer's pass 1 over those channels adds them as it adds its own
// scale * g, and the reader of a channel's gradient adds them when no pass 1 follows
// (bn_relu_apply_input_terms). One layer's terms at most are pending, so the block's gradient
// sums the same centred values as two passes would (deferring all layers' terms to the end made
// a gradient 3.6x further from float64 in a test). It saves pass 2's reads of x and dy.
struct DeferredInputTerms {
    float* constant = nullptr;  // (C) -scale * mean(g)
    float* per_xhat = nullptr;  // (C) -scale * mean(g * xhat)
};
void bn_relu_defer_input_terms(DeferredInputTerms terms, int64_t channels, const float* var, const float* gamma,
                               const float* dgamma, const float* dbeta, int64_t count);
// out = grad + constant + xhat * per_xhat, xhat = (x - mean) / sqrt(var + eps): the gradient the
// two-pass backward would have left in grad (out in the type of the convolution that reads it;
// grad f32).
void bn_relu_apply_input_terms(const FeatureMap& out, const FeatureMap& grad, const FeatureMap& x, const float* mean,
                               const float* var, DeferredInputTerms terms);

// What pass 1 writes besides dgamma and dbeta, where given:
// - recomputed: y = bn_relu_forward(x), bit for bit. The memory-efficient backward needs the
//   forward output again (for conv1's backward-weights) just as pass 1 reads the same x.
// - deferred_dx: adds scale * g and the pending terms of the pass before, `pending` (f32), to it:
//   the input gradient with this layer's terms left pending (DeferredInputTerms).
struct Pass1Outputs {
    const FeatureMap* recomputed = nullptr;
    const FeatureMap* deferred_dx = nullptr;
    DeferredInputTerms pending = {};
};

// Pass 1: dgamma and dbeta (assigned), which pass 2 needs.
void bn_relu_backward_params(float* dgamma, float* dbeta, const FeatureMap& dy, const FeatureMap& x, const float* mean,
                             const float* var, const float* gamma, const float* beta, Pass1Outputs also = {},
                             DyPixels dy_pixels = DyPixels::same_pixels);
// Pass 1's sums before their rounding to float, for data-parallel processes to add (a batch of
// 64-pixel blocks summed in double, as one process sums them).
void bn_relu_backward_param_sums(double* dgamma, double* dbeta, const FeatureMap& dy, const FeatureMap& x,
                                 const float* mean, const float* var, const float* gamma, const float* beta,
                                 Pass1Outputs also = {}, DyPixels dy_pixels = DyPixels::same_pixels);
// Pass 2: dx from dy, x and pass 1's dgamma and dbeta, which are sums over `count` pixels: this
// x's own (x.pixels()), or, with batch norm synchronised across data-parallel processes, the sums
// of every process's pass 1 over the whole batch's pixels.
void bn_relu_backward_input(const FeatureMap& dx, Accumulate mode, const FeatureMap& dy, const FeatureMap& x,
                            const float* mean, const float* var, const float* gamma, const float* beta,
                            const float* dgamma, const float* dbeta, int64_t count,
                            DyPixels dy_pixels = DyPixels::same_pixels);

}  // namespace dn
