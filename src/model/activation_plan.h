// defines: Intermediates, ActivationPlan (every activation buffer of a DenseNet step, as offsets into
//          one arena), plan_activations
#pragma once
#include "model/config.h"
#include "ops/pass.h"
#include "ops/precision.h"
#include "tensor/arena.h"

#include <vector>

namespace dn {

// What happens to the BN-ReLU outputs inside each dense layer (and the BN-ReLU-pool output of each
// transition) between forward and backward: keep: each has its own buffer; recompute: backward
// recomputes them in its own scratch (the memory-efficient DenseNet of Pleiss et al., 2017).
// Either way every bottleneck (conv1's output) is kept: recomputing one costs a convolution with
// as many multiply-adds per value as its input has channels, and keeping it, one stored value.
// Both give bit-identical results.
enum class Intermediates { keep, recompute };

struct RunShape {
    int64_t batch = 0, height = 0, width = 0;
};

// Byte offsets into the arena. Shapes are NHWC; P_b is N*H_b*W_b, block b's pixel count.
// Types: every activation and every convolution gradient operand is stored in
// ActivationPlan::activation (bf16 in bf16 precision, as autocast stores them); marked f32 are
// what is always f32: the gradients that layers accumulate into (block gradients), the head, and
// every batch statistic. Batch norm computes in f32 whatever it reads.

// Most of a step's buffers are used by one part of it only (the stem, a block, a transition or the
// head, forward or backward): each part has its own, sized for it, which live while that part
// runs and share their bytes with other parts' (MemoryPlan). What lives longer is the input and
// the stem's output, every block's features and gradient, the statistics, the kept intermediates
// and the head's small vectors.

// Where a Winograd convolution stages its operands in oneDNN's blocked layout (Conv2d::set_staging).
struct Staging {
    size_t offset = 0, bytes = 0;
};

// Where a dense layer's intermediates are.
struct LayerIntermediates {
    size_t activated_input = 0;       // (P_b, in)   norm1+relu1 output, conv1's input
    size_t bottleneck = 0;            // (P_b, bn*k) conv1 output
    size_t activated_bottleneck = 0;  // (P_b, bn*k) norm2+relu2 output, conv2's input
};

struct LayerPlan {
    LayerIntermediates forward;  // where forward writes them
    // Where backward reads them: the same buffers where they are kept (the bottleneck always, all
    // three in keep mode); else norm1's and norm2's outputs in the block's backward scratch, where
    // backward recomputes them.
    LayerIntermediates backward;
    size_t bottleneck_mean = 0, bottleneck_var = 0;  // (bn*k) batch statistics of conv1's output
};

// A block's forward scratch, shared by its layers one after the other.
struct BlockForwardScratch {
    size_t fresh_features = 0;  // (P_b, k) conv2's dense output, before it is put into the block
    // conv2's. Inference: the activated input's region, which holds nothing once conv1 has read it.
    Staging conv_staging;
};

// The gradients that only one part of backward uses (a block's layers or a transition), each
// sized for that part.
struct BackwardScratch {
    size_t d_narrow = 0;      // (P, k) conv2's output gradient; a transition's output gradient
    size_t d_bottleneck = 0;  // (P, bn*k) conv1's output gradient; a transition's pooled input gradient
    size_t d_activated_bottleneck = 0;  // (P, bn*k) conv2's input gradient (dense layers)
    size_t d_input = 0;                 // (P, in) conv1's input gradient (dense layers)
    // conv2's (dense layers): d_input, which holds nothing until conv1's backward-data writes it.
    Staging conv_staging;
};

struct BlockPlan {
    int64_t h = 0, w = 0;
    int64_t first_channels = 0;  // channels that enter the block
    int64_t channels = 0;        // channels that leave it
    size_t features = 0;             // (P_b, channels) every feature map of the block, written once
    size_t grad = 0;                 // (P_b, channels) f32, their gradient, accumulated in place
    size_t mean = 0, var = 0;            // (channels) f32 batch statistics, computed when a channel is produced
    std::vector<LayerPlan> layers;
    BlockForwardScratch forward_scratch;
    BackwardScratch scratch;         // its layers' (training)
};

// A transition is norm, relu, 1x1 convolution, 2x2 average pool. The pool and the convolution are
// both linear maps, one over pixels and one over channels, so they commute exactly: pooling first
// runs the convolution on a quarter of the pixels (a quarter of its FLOPs, forward and backward;
// 8% of densenet121's), and its backward needs only the pooled input, not the wide one.
struct TransitionPlan {
    size_t pooled_input = 0;  // (P_{b+1}, C_b) norm+relu+average pool, the convolution's input
    // Where backward reads it: the same buffer in keep mode, else the transition's backward
    // scratch, where backward recomputes it.
    size_t backward_pooled_input = 0;
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
    // What the max pool's backward finds each window's arg-max from (training): oneDNN's
    // workspace; the GPU engine's pool keeps none, and puts the pool's output back here.
    size_t pool0_workspace = 0;
    size_t pool0_workspace_bytes = 0;
    std::vector<BlockPlan> blocks;
    std::vector<TransitionPlan> transitions;
    size_t head_activated = 0;         // (P_last, C_last) f32 norm5+relu output
    size_t pooled = 0, logits = 0, log_probs = 0;  // f32 (N,C_last), (N,K), (N,K)

    // Gradients (training), each of one part of backward but for the head's small ones.
    size_t d_pooled = 0, d_logits = 0;  // f32
    size_t d_head_activated = 0;        // (P_last, C_last) f32
    size_t d_stem_out = 0;              // (P_0, F0) the stem's output gradient
    size_t d_relu0 = 0;                 // (N,stem_h,stem_w,F0) imagenet stem
    // (N,stem_h,stem_w,F0) imagenet stem; before it, the GPU engine recomputes relu0 there for its
    // max pool's backward.
    size_t d_conv0 = 0;
};

// Throws std::invalid_argument if the input is too small for the architecture.
ActivationPlan plan_activations(const DenseNetConfig& cfg, const RunShape& shape, Intermediates intermediates,
                                Pass pass, Precision precision = Precision::fp32);

}  // namespace dn
