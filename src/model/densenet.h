// defines: DenseNet (a model bound to a batch and input size: its primitives, its arena, and
//          forward and backward over them; the CPU engine's Classifier)
#pragma once
#include "model/activation_plan.h"
#include "model/classifier.h"
#include "model/parameters.h"
#include "model/replica_sync.h"
#include "ops/batch_norm_relu.h"
#include "ops/conv.h"
#include "ops/linear.h"
#include "ops/pool.h"

#include <memory>
#include <vector>

namespace dn {

class DenseNet : public Classifier {
public:
    // Builds every primitive and plans and allocates the activation arena, once. `precision` must be
    // one the CPU runs (usable_precision); bf16 keeps params, gradients and statistics f32.
    DenseNet(DnnlContext& ctx, Parameters& params, const RunShape& shape, Pass pass, Intermediates intermediates,
             Precision precision = Precision::fp32);

    // Reorders the convolution weights into oneDNN's layouts: after every change to params.
    void load_weights();

    // images (N,C,H,W) in PyTorch's layout, labels (N). Returns the mean NLL loss of log_softmax;
    // in Mode::train with label smoothing, the smoothed cross-entropy that is minimised. An
    // inference network runs the batch a chunk at a time (inference_chunk): the same results.
    float forward(const float* images_nchw, const int32_t* labels, Mode mode) override;
    // After forward(..., Mode::train): assigns every parameter gradient in params.
    void backward();

    // Data parallelism: this model trains on its shard of a global batch, beside replicas that
    // train on the others (see ReplicaSync). nullptr (the default): it trains alone.
    void set_replica_sync(ReplicaSync* sync) { sync_ = sync; }
    // nn.CrossEntropyLoss(label_smoothing=...) in training (see ops/loss.h); evaluation stays NLL.
    void set_label_smoothing(double label_smoothing) { label_smoothing_ = label_smoothing; }

    const float* logits() const override;     // (N,K)
    const float* log_probs() const override;  // (N,K)
    const ActivationPlan& plan() const { return plan_; }  // of one chunk (plan().shape.batch images)
    const RunShape& shape() const override { return shape_; }
    Precision precision() const { return plan_.precision; }
    int64_t classes() const override { return cfg_.num_classes; }

private:
    // An eval-mode BatchNorm as the per-channel affine map it is: y = scale * x + shift.
    // Inference folds norm0 into conv0 and each norm2 into its conv1 (ConvEpilogue::bias_relu).
    struct FoldedNorm {
        std::vector<float> scale, shift;
        void fold(const BatchNormParams& bn);
    };
    struct LayerOps {
        std::unique_ptr<Conv2d> conv1, conv2;
        FoldedNorm norm2;  // inference only
    };
    struct TransitionOps {
        std::unique_ptr<Conv2d> conv;  // on the pooled pixels; norm+relu+pool is one pass of ours
    };

    float* at(size_t offset) const { return arena_.floats_at(offset); }
    void* raw(size_t offset) const { return arena_.base() + offset; }
    // A dense view of an activation region, in the plan's activation type.
    FeatureMap act_map(size_t offset, int64_t h, int64_t w, int64_t c) const;
    // conv2's input (norm2+relu2's output) or its gradient, at `offset`: in the layout conv2 reads.
    FeatureMap conv2_input_map(size_t b, size_t i, size_t offset) const;
    // An operand of conv1 or its gradient (its input, activated; its output, the bottleneck), at
    // `offset`, with `channels`: in the layout conv1 runs on.
    FeatureMap conv1_map(size_t b, size_t i, size_t offset, int64_t channels) const;
    FeatureMap block_features(size_t b) const;
    FeatureMap block_grad(size_t b) const;

    float forward_chunk(const float* images_nchw, const int32_t* labels, Mode mode);
    bool chunked() const { return plan_.shape.batch < shape_.batch; }
    void stem_forward(Mode mode);
    void dense_layer_forward(size_t b, size_t i, Mode mode);
    void transition_forward(size_t b, Mode mode);
    float head_forward(const int32_t* labels, Mode mode);
    // norm1+relu1 into forward's buffer (backward recomputes it inside norm1's backward pass);
    // norm2+relu2 from where.bottleneck into where.activated_bottleneck, and the transition's
    // norm+relu+pool into `pooled_input`: in forward and, recomputing, in backward.
    void activate_layer_input(size_t b, size_t i, Mode mode);
    void activate_bottleneck(size_t b, size_t i, const LayerIntermediates& where, Mode mode);
    void pool_transition_input(size_t b, size_t pooled_input, Mode mode);
    // Whether the norms that follow a convolution run inside it (Pass::inference).
    bool folds_norms() const { return pass_ == Pass::inference; }
    ConvEpilogue folded_epilogue() const { return folds_norms() ? ConvEpilogue::bias_relu : ConvEpilogue::none; }

    // Batch norm's reductions, over the global batch where batch norm is synchronised.
    void compute_batch_stats(float* mean, float* var, const FeatureMap& x);
    int64_t stats_count(int64_t pixels) const;
    struct GradSums {
        const float *dgamma, *dbeta;  // sum(g * xhat) and sum(g) per channel
        int64_t count;                // the pixels they sum over
    };
    GradSums bn_relu_backward_sums(const BatchNormParams& bn, Pass1Outputs also, const FeatureMap& dy,
                                   const FeatureMap& x, const float* mean, const float* var,
                                   DyPixels dy_pixels = DyPixels::same_pixels);
    void bn_relu_backward_synced(const FeatureMap& dx, const BatchNormParams& bn, const FeatureMap& dy,
                                 const FeatureMap& x, const float* mean, const float* var,
                                 DyPixels dy_pixels = DyPixels::same_pixels);
    void gradients_final_from(const float* first_parameter);

    void head_backward();
    void dense_layer_backward(size_t b, size_t i);
    void transition_backward(size_t b);
    void stem_backward();

    DnnlContext& ctx_;
    Parameters& params_;
    const DenseNetConfig& cfg_;
    RunShape shape_;  // the batch forward takes
    ActivationPlan plan_;
    Arena arena_;
    Pass pass_;

    dnnl::memory user_images_, images_;
    dnnl::reorder to_nhwc_;
    std::unique_ptr<Conv2d> conv0_;
    std::unique_ptr<Pool2d> pool0_;
    FoldedNorm norm0_;  // inference with the imagenet stem only
    std::vector<std::vector<LayerOps>> layers_;
    std::vector<TransitionOps> transitions_;
    std::unique_ptr<Linear> classifier_;
    const int32_t* labels_ = nullptr;
    // A chunked inference network's outputs for the whole batch, (N,K) each, and the last chunk
    // of a batch that the chunks don't divide, padded with blank images.
    std::vector<float> batch_logits_, batch_log_probs_, padded_images_;
    std::vector<int32_t> padded_labels_;
    bool has_forward_for_backward_ = false;
    ReplicaSync* sync_ = nullptr;
    double label_smoothing_ = 0.0;
    // Under synchronised batch norm, (2, widest batch norm): moments or sums in double, and the
    // global batch's sums for pass 2 of a backward.
    std::vector<double> moments_;
    std::vector<float> grad_sums_;
    // The pending terms of norm1's input gradient in the block in backward (DeferredInputTerms),
    // one per channel each: zeroed when its gradient is assigned, then the last layer's.
    std::vector<float> pending_constant_, pending_per_xhat_;
    DeferredInputTerms deferred_terms(int64_t first_channel);
    void start_deferring(size_t b);
    // The gradient of block b's channels [first, first + count), with their deferred terms, into out.
    void read_block_grad(const FeatureMap& out, size_t b, int64_t first, int64_t count);
};

}  // namespace dn
