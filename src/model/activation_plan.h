// defines: Intermediates, ActivationPlan (every activation buffer of a DenseNet step, as offsets into
//          one arena), plan_activations
#pragma once
#include "model/config.h"
#include "ops/pass.h"
#include "ops/precision.h"
#include "tensor/arena.h"

#include <vector>

namespace dn {

// What happens to the BN-ReLU and bottleneck outputs inside each dense layer (and the BN-ReLU
// output of each transition) between forward and backward:
// keep: each has its own buffer; recompute: they share one scratch set and backward recomputes
// them (the memory-efficient DenseNet of Pleiss et al., 2017), except the bottleneck (conv1)
// outputs that are cheaper to keep than to recompute (LayerPlan::keeps_bottleneck). Both give
// bit-identical results.
enum class Intermediates { keep, recompute };

struct RunShape {
    int64_t batch = 0, height = 0, width = 0;
};

// Byte offsets into the arena. Shapes are NHWC; P_b is N*H_b*W_b, block b's pixel count.
// Types: every activation and every convolution gradient operand is stored in
// ActivationPlan::activation (bf16 in bf16 precision, as autocast stores them); marked f32 are
// what is always f32: the gradients that layers accumulate into (block gradients), the head, and
// every batch statistic. Batch norm computes in f32 whatever it reads.

// The gradients of transient activations that only one part of backward uses: a block's layers
// (sized for that block), a transition, or the stem. Each lives while its part's backward runs, so
// the large ones of the first block need no room while the later blocks' kept buffers fill the
// arena.
struct BackwardScratch {
    size_t d_narrow = 0;      // (P, k) conv2's output gradient; a transition's or the stem's output gradient
    size_t d_bottleneck = 0;  // (P, bn*k) conv1's output gradient; a transition's pooled input gradient
    size_t d_activated_bottleneck = 0;  // (P, bn*k) conv2's input gradient (dense layers only)
};

struct LayerPlan {
    size_t activated_input = 0;  // (P_b, in)      norm1+relu1 output, conv1's input
    size_t bottleneck = 0;       // (P_b, bn*k)    conv1 output
    size_t activated_bottleneck = 0;  // (P_b, bn*k) norm2+relu2 output, conv2's input
    size_t bottleneck_mean = 0, bottleneck_var = 0;  // (bn*k) batch statistics of conv1's output
    bool keeps_bottleneck = false;  // conv1's output has its own buffer and lives until backward
};

struct BlockPlan {
    int64_t h = 0, w = 0;
    int64_t first_channels = 0;  // channels that enter the block
    int64_t channels = 0;        // channels that leave it
    size_t features = 0;             // (P_b, channels) every feature map of the block, written once
    size_t grad = 0;                 // (P_b, channels) f32, their gradient, accumulated in place
    size_t mean = 0, var = 0;            // (channels) f32 batch statistics, computed when a channel is produced
    std::vector<LayerPlan> layers;
    BackwardScratch scratch;         // its layers' (training)
};

// A transition is norm, relu, 1x1 convolution, 2x2 average pool. The pool and the convolution are
// both linear maps, one over pixels and one over channels, so they commute exactly: pooling first
// runs the convolution on a quarter of the pixels (a quarter of its FLOPs, forward and backward;
// 8% of densenet121's), and its backward needs only the pooled input, not the wide one.
struct TransitionPlan {
    size_t activated = 0;     // (P_b, C_b)         norm+relu output, transient (the CUDA engine's; the
                              //                    CPU's norm+relu+pool writes pooled_input directly)
    size_t pooled_input = 0;  // (P_{b+1}, C_b)     its average pool, the convolution's input
    size_t conv_out = 0;      // (P_{b+1}, C_b / 2) dense output, before it is put into the next block
    BackwardScratch scratch;  // d_narrow (P_{b+1}, C_b / 2), d_bottleneck (P_{b+1}, C_b) (training)
};

struct ActivationPlan {
    MemoryPlan memory;
    RunShape shape;
    Intermediates intermediates = Intermediates::recompute;
    Precision precision = Precision::fp32;
    DType activation = DType::f32;  // operand_type(precision)

    size_t input = 0;                  // (N,H,W,C_in)
    int64_t stem_h = 0, stem_w = 0;  // conv0's output size
    size_t conv0_out = 0;              // (N,stem_h,stem_w,F0)
    size_t stem_mean = 0, stem_var = 0;    // (F0) statistics of conv0's output (imagenet stem)
    size_t relu0_out = 0;              // (N,stem_h,stem_w,F0) imagenet stem
    size_t pool0_out = 0;              // (P_0, F0) dense output of the stem
    size_t pool0_workspace = 0;
    size_t pool0_workspace_bytes = 0;
    size_t fresh_features = 0;         // (P_b, k) conv2's dense output, before it is put into its block
    std::vector<BlockPlan> blocks;
    std::vector<TransitionPlan> transitions;
    size_t head_activated = 0;         // (P_last, C_last) f32 norm5+relu output
    size_t pooled = 0, logits = 0, log_probs = 0;  // f32 (N,C_last), (N,K), (N,K)

    // Gradients of transient activations. d_wide is sized for its largest user and reused by all
    // (it is also where training's Winograd stages, forward too); the others are each part's own
    // (BackwardScratch).
    size_t d_wide = 0;        // da1, drelu0; f32 da5
    size_t d_stem_out = 0;    // (P_0, F0) the stem's output gradient
    size_t d_pooled = 0, d_logits = 0;  // f32
    // Where a convolution that runs Winograd stages its operands in oneDNN's blocked layout
    // (Conv2d::set_staging). Training: grad.activated, which forward never touches and which holds
    // nothing while conv2's passes run in backward (a layer's input gradient lives there from
    // conv1's backward-data on). Inference: shared.activated, which holds a layer's activated input
    // only until conv1 has read it, before conv2 runs.
    size_t conv_staging = 0, conv_staging_bytes = 0;
};

// Throws std::invalid_argument if the input is too small for the architecture.
ActivationPlan plan_activations(const DenseNetConfig& cfg, const RunShape& shape, Intermediates intermediates,
                                Pass pass, Precision precision = Precision::fp32);

}  // namespace dn
