#include "model/densenet.h"

#include "model/inference_chunk.h"
#include "ops/batch_norm_relu.h"
#include "ops/channel_copy.h"
#include "ops/loss.h"
#include "ops/profiler.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace dn {

namespace {
struct Stats {
    const float* mean;
    const float* var;
};

// Training normalises with the batch's statistics and folds them into the running ones;
// evaluation normalises with the running statistics.
Stats normalisation_stats(Mode mode, const float* batch_mean, const float* batch_var, const BatchNormParams& bn,
                          int64_t pixels) {
    if (mode == Mode::eval) return {bn.running_mean, bn.running_var};
    update_running_stats(bn.running_mean, bn.running_var, batch_mean, batch_var, bn.channels, pixels);
    *bn.num_batches_tracked += 1;
    return {batch_mean, batch_var};
}

ConvShape conv_shape(const ConvParams& c, int64_t batch, int64_t h, int64_t w, int64_t stride, int64_t pad) {
    return {batch, c.in_channels, h, w, c.out_channels, c.kernel, stride, pad};
}
}  // namespace

DenseNet::DenseNet(DnnlContext& ctx, Parameters& params, const RunShape& shape, Pass pass,
                   Intermediates intermediates, Precision precision)
    : ctx_(ctx), params_(params), cfg_(params.config()), shape_(shape),
      plan_(plan_activations(params.config(), executed_shape(params.config(), shape, pass, precision), intermediates,
                             pass, precision)),
      arena_(plan_.memory.total_bytes()), pass_(pass) {
    const int64_t N = plan_.shape.batch;
    if (chunked()) {
        batch_logits_.resize(size_t(shape.batch * cfg_.num_classes));
        batch_log_probs_.resize(batch_logits_.size());
        if (shape.batch % N != 0) {
            padded_images_.assign(size_t(N * cfg_.in_channels * shape.height * shape.width), 0.0f);
            padded_labels_.assign(size_t(N), 0);
        }
    }
    const auto& eng = ctx.engine();
    const DType act = plan_.activation;
    user_images_ = dnnl::memory({{N, cfg_.in_channels, shape.height, shape.width}, dt::f32, tag::nchw}, eng, nullptr);
    // The layout reorder converts the images to conv0's operand type on the way.
    images_ = dnnl::memory(nhwc_desc(N, cfg_.in_channels, shape.height, shape.width, act), eng, raw(plan_.input));
    to_nhwc_ = dnnl::reorder(user_images_, images_);

    if (cfg_.stem == Stem::imagenet) {
        conv0_ = std::make_unique<Conv2d>(ctx, conv_shape(params.conv0, N, shape.height, shape.width, 2, 3), pass, "conv0",
                                          act, folded_epilogue());
        pool0_ = std::make_unique<Pool2d>(ctx, PoolShape{N, cfg_.num_init_features, plan_.stem_h, plan_.stem_w, 3, 2, 1},
                                          PoolKind::max, pass, "pool0", act);
        if (pool0_->workspace_bytes() > plan_.pool0_workspace_bytes)
            throw std::logic_error("pool0 needs a larger workspace than planned");
    } else {
        conv0_ = std::make_unique<Conv2d>(ctx, conv_shape(params.conv0, N, shape.height, shape.width, 1, 1), pass, "conv0",
                                          act);
    }

    for (size_t b = 0; b < plan_.blocks.size(); ++b) {
        const BlockPlan& block = plan_.blocks[b];
        std::vector<LayerOps> ops;
        for (size_t i = 0; i < block.layers.size(); ++i) {
            const DenseLayerParams& l = params.blocks[b][i];
            const std::string name = "block" + std::to_string(b + 1) + ".layer" + std::to_string(i + 1);
            LayerOps o;
            const ConvShape conv2 = conv_shape(l.conv2, N, block.h, block.w, 1, 1);
            o.conv2 = std::make_unique<Conv2d>(ctx, conv2, pass, (name + ".conv2").c_str(), act);
            // Winograd stages its operands in the block's scratch (forward's, and backward's in
            // training); where they would not fit, the layer runs the direct kernels.
            size_t staging_room = block.forward_scratch.conv_staging.bytes;
            if (pass == Pass::training) staging_room = std::min(staging_room, block.scratch.conv_staging.bytes);
            if (!o.conv2->fit_staging(staging_room))
                o.conv2 = std::make_unique<Conv2d>(ctx, conv2, pass, (name + ".conv2").c_str(), act, ConvKernels{});
            // conv2's input is written in the Winograd kernel's own layout where it has one, sparing
            // its layout change: by norm2+relu2 in training (whose backward then reads that input's
            // gradient in it too), and by conv1, which applies the folded norm2, in inference.
            const ConvShape conv1 = conv_shape(l.conv1, N, block.h, block.w, 1, 0);
            const bool blocked_bottleneck =
                o.conv2->can_take_blocked_src() && (!folds_norms() || can_run_blocked(conv1, act, pass));
            if (blocked_bottleneck) o.conv2->take_blocked_src();
            // Training's conv1 runs on the faster layout; inference's applies the folded norm2 and
            // writes conv2's input.
            const Layout conv1_layout = folds_norms() ? (blocked_bottleneck ? Layout::nchw16c : Layout::nhwc)
                                                      : default_activation_layout(conv1, act, pass);
            o.conv1 = std::make_unique<Conv2d>(ctx, conv1, pass, (name + ".conv1").c_str(), act, conv1_layout,
                                               folded_epilogue());
            ops.push_back(std::move(o));
        }
        layers_.push_back(std::move(ops));
        if (b + 1 < plan_.blocks.size()) {
            const ConvParams& c = params.transitions[b].conv;
            const std::string name = "transition" + std::to_string(b + 1);
            TransitionOps t;
            const BlockPlan& next = plan_.blocks[b + 1];
            // Pool first, then the convolution on the pooled pixels (see TransitionPlan).
            t.conv = std::make_unique<Conv2d>(ctx, conv_shape(c, N, next.h, next.w, 1, 0), pass, (name + ".conv").c_str(),
                                              act);
            transitions_.push_back(std::move(t));
        }
    }
    classifier_ = std::make_unique<Linear>(ctx, N, params.classifier.in_features, params.classifier.out_features,
                                           "classifier");
    if (pass == Pass::training) {
        int64_t widest = 0;
        for (const BlockPlan& block : plan_.blocks) widest = std::max(widest, block.channels);
        pending_constant_.assign(size_t(widest), 0.0f);
        pending_per_xhat_.assign(size_t(widest), 0.0f);
    }
    load_weights();
}

void DenseNet::FoldedNorm::fold(const BatchNormParams& bn) {
    scale.resize(size_t(bn.channels));
    shift.resize(size_t(bn.channels));
    for (int64_t c = 0; c < bn.channels; ++c) {
        const double s = double(bn.weight[c]) / std::sqrt(double(bn.running_var[c]) + double(kBnEps));
        scale[size_t(c)] = float(s);
        shift[size_t(c)] = float(double(bn.bias[c]) - double(bn.running_mean[c]) * s);
    }
}

void DenseNet::load_weights() {
    if (folds_norms() && cfg_.stem == Stem::imagenet) {
        norm0_.fold(*params_.norm0);
        conv0_->load_weights(params_.conv0.weight, norm0_.scale.data(), norm0_.shift.data());
    } else {
        conv0_->load_weights(params_.conv0.weight);
    }
    for (size_t b = 0; b < layers_.size(); ++b)
        for (size_t i = 0; i < layers_[b].size(); ++i) {
            LayerOps& ops = layers_[b][i];
            const DenseLayerParams& l = params_.blocks[b][i];
            if (folds_norms()) {
                ops.norm2.fold(l.norm2);
                ops.conv1->load_weights(l.conv1.weight, ops.norm2.scale.data(), ops.norm2.shift.data());
            } else {
                ops.conv1->load_weights(l.conv1.weight);
            }
            ops.conv2->load_weights(l.conv2.weight);
        }
    for (size_t t = 0; t < transitions_.size(); ++t) transitions_[t].conv->load_weights(params_.transitions[t].conv.weight);
}

FeatureMap DenseNet::block_features(size_t b) const {
    const BlockPlan& block = plan_.blocks[b];
    return act_map(block.features, block.h, block.w, block.channels);
}

FeatureMap DenseNet::block_grad(size_t b) const {
    const BlockPlan& block = plan_.blocks[b];
    return dense_map(at(block.grad), plan_.shape.batch, block.h, block.w, block.channels);
}

FeatureMap DenseNet::act_map(size_t offset, int64_t h, int64_t w, int64_t c) const {
    return dense_map(raw(offset), plan_.activation, plan_.shape.batch, h, w, c);
}

FeatureMap DenseNet::conv2_input_map(size_t b, size_t i, size_t offset) const {
    const BlockPlan& block = plan_.blocks[b];
    const int64_t C = params_.blocks[b][i].norm2.channels;
    if (!layers_[b][i].conv2->takes_blocked_src()) return act_map(offset, block.h, block.w, C);
    return blocked_map(raw(offset), plan_.activation, plan_.shape.batch, block.h, block.w, C);
}

FeatureMap DenseNet::conv1_map(size_t b, size_t i, size_t offset, int64_t channels) const {
    const BlockPlan& block = plan_.blocks[b];
    if (layers_[b][i].conv1->activations() == Layout::nhwc) return act_map(offset, block.h, block.w, channels);
    return blocked_map(raw(offset), plan_.activation, plan_.shape.batch, block.h, block.w, channels);
}

const float* DenseNet::logits() const { return chunked() ? batch_logits_.data() : at(plan_.logits); }
const float* DenseNet::log_probs() const { return chunked() ? batch_log_probs_.data() : at(plan_.log_probs); }

// ---------------------------------------------------------------------------------------------
// Forward

float DenseNet::forward(const float* images_nchw, const int32_t* labels, Mode mode) {
    if (!chunked()) return forward_chunk(images_nchw, labels, mode);
    const int64_t N = shape_.batch, chunk = plan_.shape.batch, K = cfg_.num_classes;
    const int64_t image_floats = cfg_.in_channels * shape_.height * shape_.width;
    double nll = 0.0;
    for (int64_t first = 0; first < N; first += chunk) {
        const int64_t n = std::min(chunk, N - first);
        const float* images = images_nchw + first * image_floats;
        const int32_t* chunk_labels = labels + first;
        if (n < chunk) {  // the last chunk: its images, then the blank ones already there
            std::copy(images, images + n * image_floats, padded_images_.begin());
            std::copy(chunk_labels, chunk_labels + n, padded_labels_.begin());
            images = padded_images_.data(), chunk_labels = padded_labels_.data();
        }
        forward_chunk(images, chunk_labels, mode);
        std::copy(at(plan_.logits), at(plan_.logits) + n * K, batch_logits_.begin() + first * K);
        const float* log_probs = at(plan_.log_probs);
        std::copy(log_probs, log_probs + n * K, batch_log_probs_.begin() + first * K);
        for (int64_t i = 0; i < n; ++i) nll -= double(log_probs[i * K + chunk_labels[i]]);
    }
    return float(nll / double(N));
}

float DenseNet::forward_chunk(const float* images_nchw, const int32_t* labels, Mode mode) {
    if (mode == Mode::train && pass_ != Pass::training)
        throw std::logic_error("this DenseNet was built for inference only");
    user_images_.set_data_handle(const_cast<float*>(images_nchw));
    {
        PhaseTimer timer(Phase::copy, 0.0, double(user_images_.get_desc().get_size() + images_.get_desc().get_size()));
        to_nhwc_.execute(ctx_.stream(), user_images_, images_);
    }

    stem_forward(mode);
    for (size_t b = 0; b < plan_.blocks.size(); ++b) {
        for (size_t i = 0; i < plan_.blocks[b].layers.size(); ++i) dense_layer_forward(b, i, mode);
        if (b + 1 < plan_.blocks.size()) transition_forward(b, mode);
    }
    has_forward_for_backward_ = mode == Mode::train;
    labels_ = labels;
    return head_forward(labels, mode);
}

void DenseNet::stem_forward(Mode mode) {
    const int64_t F0 = cfg_.num_init_features;
    const BlockPlan& first = plan_.blocks[0];
    FeatureMap conv0_out = act_map(plan_.conv0_out, plan_.stem_h, plan_.stem_w, F0);
    FeatureMap relu0 = act_map(plan_.relu0_out, plan_.stem_h, plan_.stem_w, F0);
    const bool folded_norm0 = folds_norms() && cfg_.stem == Stem::imagenet;
    conv0_->forward(raw(plan_.input), folded_norm0 ? relu0.data : conv0_out.data);

    FeatureMap stem_out = conv0_out;
    if (cfg_.stem == Stem::imagenet) {
        const BatchNormParams& bn = *params_.norm0;
        if (mode == Mode::train) compute_batch_stats(at(plan_.stem_mean), at(plan_.stem_var), conv0_out);
        Stats s = normalisation_stats(mode, at(plan_.stem_mean), at(plan_.stem_var), bn,
                                      stats_count(conv0_out.pixels()));
        if (!folded_norm0) bn_relu_forward(relu0, conv0_out, s.mean, s.var, bn.weight, bn.bias);
        stem_out = act_map(plan_.pool0_out, first.h, first.w, F0);
        // A training-pass pool records its arg-max even in evaluation; the workspace is always there.
        pool0_->forward(relu0.data, stem_out.data, pass_ == Pass::training ? arena_.base() + plan_.pool0_workspace : nullptr);
    }
    copy_channels(block_features(0).channels(0, F0), stem_out);
    if (mode == Mode::train) compute_batch_stats(at(first.mean), at(first.var), stem_out);
}

void DenseNet::activate_layer_input(size_t b, size_t i, Mode mode) {
    const BlockPlan& block = plan_.blocks[b];
    const DenseLayerParams& l = params_.blocks[b][i];
    const int64_t in = l.norm1.channels;
    FeatureMap x = block_features(b).channels(0, in);
    FeatureMap y = conv1_map(b, i, block.layers[i].forward.activated_input, in);
    const float* mean = mode == Mode::train ? at(block.mean) : l.norm1.running_mean;
    const float* var = mode == Mode::train ? at(block.var) : l.norm1.running_var;
    bn_relu_forward(y, x, mean, var, l.norm1.weight, l.norm1.bias);
}

void DenseNet::activate_bottleneck(size_t b, size_t i, const LayerIntermediates& where, Mode mode) {
    const BlockPlan& block = plan_.blocks[b];
    const LayerPlan& lp = block.layers[i];
    const DenseLayerParams& l = params_.blocks[b][i];
    const int64_t C = l.norm2.channels;
    FeatureMap x = conv1_map(b, i, where.bottleneck, C);
    FeatureMap y = conv2_input_map(b, i, where.activated_bottleneck);
    const float* mean = mode == Mode::train ? at(lp.bottleneck_mean) : l.norm2.running_mean;
    const float* var = mode == Mode::train ? at(lp.bottleneck_var) : l.norm2.running_var;
    bn_relu_forward(y, x, mean, var, l.norm2.weight, l.norm2.bias);
}

void DenseNet::dense_layer_forward(size_t b, size_t i, Mode mode) {
    const BlockPlan& block = plan_.blocks[b];
    const LayerPlan& lp = block.layers[i];
    const LayerIntermediates& buffers = lp.forward;
    const DenseLayerParams& l = params_.blocks[b][i];
    LayerOps& ops = layers_[b][i];
    const int64_t N = plan_.shape.batch, in = l.norm1.channels, k = cfg_.growth_rate;
    const int64_t P = stats_count(N * block.h * block.w);

    // norm1 reuses the block's statistics of these channels; only its gamma and beta are its own.
    if (mode == Mode::train) normalisation_stats(mode, at(block.mean), at(block.var), l.norm1, P);
    activate_layer_input(b, i, mode);
    if (folds_norms()) {  // conv1 applies norm2 and relu2 itself
        ops.conv1->forward(raw(buffers.activated_input), raw(buffers.activated_bottleneck));
    } else {
        ops.conv1->forward(raw(buffers.activated_input), raw(buffers.bottleneck));
        FeatureMap bottleneck = conv1_map(b, i, buffers.bottleneck, l.norm2.channels);
        if (mode == Mode::train) {
            compute_batch_stats(at(lp.bottleneck_mean), at(lp.bottleneck_var), bottleneck);
            normalisation_stats(mode, at(lp.bottleneck_mean), at(lp.bottleneck_var), l.norm2, P);
        }
        activate_bottleneck(b, i, buffers, mode);
    }

    // conv2 writes dense; its k channels are then put into the block buffer, once.
    FeatureMap fresh = act_map(block.forward_scratch.fresh_features, block.h, block.w, k);
    ops.conv2->set_staging(raw(block.forward_scratch.conv_staging.offset));
    ops.conv2->forward(raw(buffers.activated_bottleneck), fresh.data);
    copy_channels(block_features(b).channels(in, k), fresh);
    // The same values as the slot's, read densely.
    if (mode == Mode::train) compute_batch_stats(at(block.mean) + in, at(block.var) + in, fresh);
}

// norm, relu and the average pool in one pass: the convolution's input.
void DenseNet::pool_transition_input(size_t b, size_t pooled_input, Mode mode) {
    const BlockPlan& block = plan_.blocks[b];
    const BlockPlan& next = plan_.blocks[b + 1];
    const BatchNormParams& bn = params_.transitions[b].norm;
    FeatureMap x = block_features(b);
    FeatureMap y = act_map(pooled_input, next.h, next.w, x.c);
    const float* mean = mode == Mode::train ? at(block.mean) : bn.running_mean;
    const float* var = mode == Mode::train ? at(block.var) : bn.running_var;
    bn_relu_avg_pool_forward(y, x, mean, var, bn.weight, bn.bias);
}

void DenseNet::transition_forward(size_t b, Mode mode) {
    const BlockPlan& block = plan_.blocks[b];
    const BlockPlan& next = plan_.blocks[b + 1];
    const TransitionPlan& tp = plan_.transitions[b];
    const int64_t N = plan_.shape.batch;
    if (mode == Mode::train)
        normalisation_stats(mode, at(block.mean), at(block.var), params_.transitions[b].norm,
                            stats_count(N * block.h * block.w));
    pool_transition_input(b, tp.pooled_input, mode);
    transitions_[b].conv->forward(raw(tp.pooled_input), raw(tp.conv_out));
    FeatureMap out = act_map(tp.conv_out, next.h, next.w, next.first_channels);
    copy_channels(block_features(b + 1).channels(0, next.first_channels), out);
    if (mode == Mode::train) compute_batch_stats(at(next.mean), at(next.var), out);
}

float DenseNet::head_forward(const int32_t* labels, Mode mode) {
    const size_t last = plan_.blocks.size() - 1;
    const BlockPlan& block = plan_.blocks[last];
    const BatchNormParams& bn = params_.norm5;
    FeatureMap x = block_features(last);
    Stats s = normalisation_stats(mode, at(block.mean), at(block.var), bn, stats_count(x.pixels()));
    FeatureMap activated = dense_map(at(plan_.head_activated), x.n, x.h, x.w, x.c);
    bn_relu_forward(activated, x, s.mean, s.var, bn.weight, bn.bias);
    global_avg_pool_forward(at(plan_.pooled), activated);
    const LinearParams& fc = params_.classifier;
    classifier_->forward(at(plan_.logits), at(plan_.pooled), fc.weight, fc.bias);
    return log_softmax_nll_forward(at(plan_.log_probs), at(plan_.logits), labels, x.n, fc.out_features,
                                   mode == Mode::train ? label_smoothing_ : 0.0);
}

// ---------------------------------------------------------------------------------------------
// Batch norm across replicas. Under synchronised batch norm the statistics are those of the
// global batch, and so are the sums that pass 2 of the backward needs; every other reduction over
// the batch (the convolutions' weight gradients) is this shard's, summed afterwards with the
// gradients.

void DenseNet::compute_batch_stats(float* mean, float* var, const FeatureMap& x) {
    if (!sync_ || !sync_->synchronises_batch_norm()) return batch_stats(mean, var, x);
    if (int64_t(moments_.size()) < 2 * x.c) moments_.resize(size_t(2 * x.c));  // first step only
    batch_moments(moments_.data(), moments_.data() + x.c, x);
    sync_->combine_batch_moments(mean, var, moments_.data(), moments_.data() + x.c, x.c, x.pixels());
}

int64_t DenseNet::stats_count(int64_t pixels) const {
    if (!sync_ || !sync_->synchronises_batch_norm()) return pixels;
    return pixels / plan_.shape.batch * sync_->global_batch();
}

// Pass 1 of a batch norm's backward: assigns its parameter gradients, and returns the sums pass 2
// needs (the global batch's). `also`: what the pass writes besides (Pass1Outputs).
DenseNet::GradSums DenseNet::bn_relu_backward_sums(const BatchNormParams& bn, Pass1Outputs also, const FeatureMap& dy,
                                                   const FeatureMap& x, const float* mean, const float* var,
                                                   DyPixels dy_pixels) {
    if (!sync_ || !sync_->synchronises_batch_norm()) {
        bn_relu_backward_params(bn.dweight, bn.dbias, dy, x, mean, var, bn.weight, bn.bias, also, dy_pixels);
        return {bn.dweight, bn.dbias, x.pixels()};
    }
    const int64_t C = bn.channels;
    if (int64_t(moments_.size()) < 2 * C) moments_.resize(size_t(2 * C));  // first step only
    if (int64_t(grad_sums_.size()) < 2 * C) grad_sums_.resize(size_t(2 * C));
    double* sums = moments_.data();  // (dgamma, dbeta)
    bn_relu_backward_param_sums(sums, sums + C, dy, x, mean, var, bn.weight, bn.bias, also, dy_pixels);
    sync_->sum(sums, 2 * C);
    for (int64_t j = 0; j < 2 * C; ++j) grad_sums_[size_t(j)] = float(sums[j]);
    // These sums are the parameter gradients of the global batch already, rounded once, as one
    // process rounds them. Replica 0 holds them and the others add zero in the gradient sum, which
    // then leaves them as they are; adding each shard's float part would round twice, and lose
    // the dgamma of a channel whose shards' parts nearly cancel.
    const bool holder = sync_->replica() == 0;
    for (int64_t j = 0; j < C; ++j) {
        bn.dweight[j] = holder ? grad_sums_[size_t(j)] : 0.0f;
        bn.dbias[j] = holder ? grad_sums_[size_t(C + j)] : 0.0f;
    }
    return {grad_sums_.data(), grad_sums_.data() + C, stats_count(x.pixels())};
}

// bn_relu_backward with dx assigned, over the global batch where batch norm is synchronised.
void DenseNet::bn_relu_backward_synced(const FeatureMap& dx, const BatchNormParams& bn, const FeatureMap& dy,
                                       const FeatureMap& x, const float* mean, const float* var, DyPixels dy_pixels) {
    const GradSums sums = bn_relu_backward_sums(bn, {}, dy, x, mean, var, dy_pixels);
    bn_relu_backward_input(dx, Accumulate::assign, dy, x, mean, var, bn.weight, bn.bias, sums.dgamma, sums.dbeta,
                           sums.count, dy_pixels);
}

DeferredInputTerms DenseNet::deferred_terms(int64_t first_channel) {
    return {pending_constant_.data() + first_channel, pending_per_xhat_.data() + first_channel};
}

void DenseNet::start_deferring(size_t b) {
    const int64_t channels = plan_.blocks[b].channels;
    std::fill_n(pending_constant_.begin(), channels, 0.0f);
    std::fill_n(pending_per_xhat_.begin(), channels, 0.0f);
}

void DenseNet::read_block_grad(const FeatureMap& out, size_t b, int64_t first, int64_t count) {
    const BlockPlan& block = plan_.blocks[b];
    bn_relu_apply_input_terms(out, block_grad(b).channels(first, count), block_features(b).channels(first, count),
                              at(block.mean) + first, at(block.var) + first, deferred_terms(first));
}

// Parameters are stored in state_dict order and backward runs in reverse, so once a module's
// backward is done every gradient from its first parameter to the end is final.
void DenseNet::gradients_final_from(const float* first_parameter) {
    if (sync_) sync_->gradients_final_from(first_parameter - params_.values());
}

// ---------------------------------------------------------------------------------------------
// Backward, in reverse order of forward. Parameter gradients are assigned (each parameter is used
// once per step). A block's feature gradient is assigned by what reads the whole block (the
// transition or the head) and then accumulated by every layer's norm1, from the last layer back,
// each leaving the per-channel terms of its input gradient to the next one's pass or to the
// gradient's reader (DeferredInputTerms): the layer that made a channel, the transition or the stem.

void DenseNet::backward() {
    if (!has_forward_for_backward_) throw std::logic_error("backward() needs a forward(..., Mode::train) first");
    head_backward();
    for (size_t b = plan_.blocks.size(); b-- > 0;) {
        for (size_t i = plan_.blocks[b].layers.size(); i-- > 0;) dense_layer_backward(b, i);
        if (b > 0) transition_backward(b - 1);
    }
    stem_backward();
    has_forward_for_backward_ = false;
}

void DenseNet::head_backward() {
    const size_t last = plan_.blocks.size() - 1;
    const BlockPlan& block = plan_.blocks[last];
    const BatchNormParams& bn = params_.norm5;
    const LinearParams& fc = params_.classifier;
    const int64_t N = plan_.shape.batch;
    log_softmax_nll_backward(at(plan_.d_logits), at(plan_.log_probs), labels_, N, fc.out_features,
                             sync_ ? sync_->global_batch() : N, label_smoothing_);
    classifier_->backward(at(plan_.d_pooled), fc.dweight, fc.dbias, at(plan_.d_logits), at(plan_.pooled), fc.weight);
    FeatureMap x = block_features(last);
    FeatureMap d_activated = dense_map(at(plan_.d_head_activated), x.n, x.h, x.w, x.c);
    global_avg_pool_backward(d_activated, at(plan_.d_pooled));
    bn_relu_backward_synced(block_grad(last), bn, d_activated, x, at(block.mean), at(block.var));
    start_deferring(last);
    gradients_final_from(bn.weight);
}

void DenseNet::dense_layer_backward(size_t b, size_t i) {
    const BlockPlan& block = plan_.blocks[b];
    const LayerPlan& lp = block.layers[i];
    const LayerIntermediates& buffers = lp.backward;
    const DenseLayerParams& l = params_.blocks[b][i];
    LayerOps& ops = layers_[b][i];
    const int64_t in = l.norm1.channels, k = cfg_.growth_rate, C = l.norm2.channels;

    // Recomputing, norm1's backward recomputes conv1's input as it reads the same x, just before
    // conv1's backward-weights reads it, still in cache.
    const bool recompute = plan_.intermediates == Intermediates::recompute;
    if (recompute) activate_bottleneck(b, i, buffers, Mode::train);

    // The gradient of the layer's new channels, read out of the block's as conv2's dense operand.
    const BackwardScratch& scratch = block.scratch;
    FeatureMap d_fresh = act_map(scratch.d_narrow, block.h, block.w, k);
    read_block_grad(d_fresh, b, in, k);
    ops.conv2->set_staging(raw(scratch.conv_staging.offset));
    ops.conv2->backward(raw(buffers.activated_bottleneck), d_fresh.data, raw(scratch.d_activated_bottleneck), l.conv2.dweight);

    FeatureMap bottleneck = conv1_map(b, i, buffers.bottleneck, C);
    FeatureMap d_bottleneck = conv1_map(b, i, scratch.d_bottleneck, C);
    bn_relu_backward_synced(d_bottleneck, l.norm2, conv2_input_map(b, i, scratch.d_activated_bottleneck), bottleneck,
                            at(lp.bottleneck_mean), at(lp.bottleneck_var));
    const BatchNormParams& n1 = l.norm1;
    FeatureMap x = block_features(b).channels(0, in), d_input = conv1_map(b, i, scratch.d_input, in);
    ops.conv1->backward_data(d_bottleneck.data, d_input.data);
    // norm1's backward in one pass: the sums, the input gradient with the layer after's terms and
    // without its own (DeferredInputTerms), and (recomputing) conv1's input again, which its
    // backward-weights then reads.
    const FeatureMap activated_input = conv1_map(b, i, buffers.activated_input, in);
    const FeatureMap d_block_input = block_grad(b).channels(0, in);
    const GradSums sums = bn_relu_backward_sums(n1, {recompute ? &activated_input : nullptr, &d_block_input,
                                                     deferred_terms(0)},
                                                d_input, x, at(block.mean), at(block.var));
    bn_relu_defer_input_terms(deferred_terms(0), in, at(block.var), n1.weight, sums.dgamma, sums.dbeta, sums.count);
    ops.conv1->backward_weights(raw(buffers.activated_input), d_bottleneck.data, l.conv1.dweight);
    gradients_final_from(n1.weight);
}

void DenseNet::transition_backward(size_t b) {
    const BlockPlan& block = plan_.blocks[b];
    const BlockPlan& next = plan_.blocks[b + 1];
    const TransitionPlan& tp = plan_.transitions[b];
    const TransitionParams& t = params_.transitions[b];

    if (plan_.intermediates == Intermediates::recompute) pool_transition_input(b, tp.backward_pooled_input, Mode::train);
    FeatureMap d_out = act_map(tp.scratch.d_narrow, next.h, next.w, next.first_channels);
    read_block_grad(d_out, b + 1, 0, next.first_channels);
    transitions_[b].conv->backward_weights(raw(tp.backward_pooled_input), d_out.data, t.conv.dweight);
    transitions_[b].conv->backward_data(d_out.data, raw(tp.scratch.d_bottleneck));
    // The pool's backward runs inside the norm's: it reads the pooled gradient.
    FeatureMap x = block_features(b);
    bn_relu_backward_synced(block_grad(b), t.norm, act_map(tp.scratch.d_bottleneck, next.h, next.w, x.c), x,
                            at(block.mean), at(block.var), DyPixels::avg_pool_2x2);
    start_deferring(b);
    gradients_final_from(t.norm.weight);
}

void DenseNet::stem_backward() {
    const int64_t F0 = cfg_.num_init_features;
    const BlockPlan& first = plan_.blocks[0];
    // With the small-image stem this is conv0's output gradient, an operand; the max pool's is f32.
    FeatureMap d_stem = act_map(plan_.d_stem_out, first.h, first.w, F0);
    read_block_grad(d_stem, 0, 0, F0);
    if (cfg_.stem == Stem::small_inputs) {
        conv0_->backward_weights(raw(plan_.input), d_stem.data, params_.conv0.dweight);
        gradients_final_from(params_.conv0.weight);
        return;
    }
    const BatchNormParams& bn = *params_.norm0;
    FeatureMap d_relu0 = act_map(plan_.d_relu0, plan_.stem_h, plan_.stem_w, F0);
    pool0_->backward(d_stem.data, d_relu0.data, arena_.base() + plan_.pool0_workspace);
    FeatureMap d_conv0 = act_map(plan_.d_conv0, plan_.stem_h, plan_.stem_w, F0);
    bn_relu_backward_synced(d_conv0, bn, d_relu0, act_map(plan_.conv0_out, plan_.stem_h, plan_.stem_w, F0),
                            at(plan_.stem_mean), at(plan_.stem_var));
    conv0_->backward_weights(raw(plan_.input), d_conv0.data, params_.conv0.dweight);
    gradients_final_from(params_.conv0.weight);
}

}  // namespace dn
