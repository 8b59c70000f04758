#include "cuda/densenet.h"

#include "cuda/batch_norm_relu.h"
#include "cuda/channel_copy.h"
#include "cuda/cuda_check.h"
#include "cuda/global_pool.h"
#include "cuda/layout.h"
#include "cuda/loss.h"

#include <algorithm>
#include <stdexcept>

namespace dn::cuda {

// ---------------------------------------------------------------------------------------------
// DeviceParameters

DeviceParameters::DeviceParameters(Parameters& params, DeviceGradients gradients)
    : params_(params), values_(size_t(params.count()) * sizeof(float)),
      grads_(gradients == DeviceGradients::kept ? size_t(params.count()) * sizeof(float) : 0),
      running_(size_t(params.running_count()) * sizeof(float)) {}

DeviceParameters& DeviceParameters::upload(cudaStream_t stream) {
    CUDA_CHECK(cudaMemcpyAsync(values_.bytes(), params_.values(), values_.size(), cudaMemcpyHostToDevice, stream));
    CUDA_CHECK(cudaMemcpyAsync(running_.bytes(), params_.running_stats(), running_.size(), cudaMemcpyHostToDevice, stream));
    CUDA_CHECK(cudaStreamSynchronize(stream));  // the host arrays may change once this returns
    return *this;
}

void DeviceParameters::download(cudaStream_t stream) {
    CUDA_CHECK(cudaMemcpyAsync(params_.values(), values_.bytes(), values_.size(), cudaMemcpyDeviceToHost, stream));
    if (grads_.size())
        CUDA_CHECK(cudaMemcpyAsync(params_.grads(), grads_.bytes(), grads_.size(), cudaMemcpyDeviceToHost, stream));
    CUDA_CHECK(cudaMemcpyAsync(params_.running_stats(), running_.bytes(), running_.size(), cudaMemcpyDeviceToHost, stream));
    CUDA_CHECK(cudaStreamSynchronize(stream));
}

float* DeviceParameters::at(const float* host) const {
    auto within = [&](const float* base, int64_t count) { return host >= base && host < base + count; };
    if (within(params_.values(), params_.count())) return values_.floats() + (host - params_.values());
    if (within(params_.grads(), params_.count()))
        return grads_.size() ? grads_.floats() + (host - params_.grads()) : nullptr;
    if (within(params_.running_stats(), params_.running_count()))
        return running_.floats() + (host - params_.running_stats());
    throw std::logic_error("cuda::DeviceParameters: a pointer outside the parameter table");
}

// ---------------------------------------------------------------------------------------------
// Building

namespace {
ConvShape conv_shape(const ConvParams& c, int64_t batch, int64_t h, int64_t w, int64_t stride, int64_t pad) {
    return {batch, c.in_channels, h, w, c.out_channels, c.kernel, stride, pad};
}

// Each convolution's weights start on a 256-byte boundary, as cudaMalloc's own buffers do (and
// cuDNN's vectorised loads want, whatever the element type and count).
constexpr size_t kWeightAlignment = 256;

size_t aligned_weight_bytes(int64_t count, DType type) {
    const size_t bytes = size_t(count) * dtype_bytes(type);
    return (bytes + kWeightAlignment - 1) / kWeightAlignment * kWeightAlignment;
}

// The bytes of every convolution's weight copy, each aligned (add_conv_weights).
size_t conv_weight_bytes(const Parameters& p, DType type) {
    size_t total = 0;
    auto add = [&](const ConvParams& c) {
        total += aligned_weight_bytes(c.out_channels * c.in_channels * c.kernel * c.kernel, type);
    };
    add(p.conv0);
    for (const auto& block : p.blocks)
        for (const auto& l : block) add(l.conv1), add(l.conv2);
    for (const auto& t : p.transitions) add(t.conv);
    return total;
}
}  // namespace

void* DenseNet::add_conv_weights(const ConvParams& p, const ConvShape& shape, size_t& offset) {
    void* ohwi = weights_ohwi_.bytes() + offset;  // offset in bytes
    offset += aligned_weight_bytes(shape.weight_count(), plan_.activation);
    conv_weights_.push_back({&p, shape, ohwi});
    return ohwi;
}

DenseNet::DenseNet(Context& ctx, Parameters& params, DeviceParameters& device, const RunShape& shape, Pass pass,
                   Intermediates intermediates, Precision precision)
    : ctx_(ctx), params_(params), device_(device), cfg_(params.config()),
      plan_(plan_activations(params.config(), shape, intermediates, pass, precision)), pass_(pass),
      arena_(plan_.memory.total_bytes()),
      weights_ohwi_(conv_weight_bytes(params, plan_.activation)),
      loss_(sizeof(LossRow) * size_t(1 + shape.batch)) {  // the loss in the first row's place, then the rows
    const int64_t N = shape.batch;
    const DType act = plan_.activation;
    size_t offset = 0, workspace = 0;
    int64_t widest_weights = 0, widest_reduction = 0;
    auto track = [&](const Conv2d& c) {
        workspace = std::max(workspace, c.workspace_bytes());
        widest_weights = std::max(widest_weights, c.shape().weight_count());
    };
    auto reduction = [&](int64_t pixels, int64_t channels) {
        widest_reduction = std::max<int64_t>(widest_reduction, int64_t(reduction_scratch_bytes(pixels, channels)));
    };

    if (cfg_.stem == Stem::imagenet) {
        const ConvShape s0 = conv_shape(params.conv0, N, shape.height, shape.width, 2, 3);
        conv0_ = std::make_unique<Conv2d>(ctx.cudnn(), s0, ctx.tf32(), act);
        w0_ = add_conv_weights(params.conv0, s0, offset);
        pool0_ = std::make_unique<Pool2d>(
            ctx.cudnn(), PoolShape{N, cfg_.num_init_features, plan_.stem_h, plan_.stem_w, 3, 2, 1}, PoolKind::max, act);
        reduction(N * plan_.stem_h * plan_.stem_w, cfg_.num_init_features);
    } else {
        const ConvShape s0 = conv_shape(params.conv0, N, shape.height, shape.width, 1, 1);
        conv0_ = std::make_unique<Conv2d>(ctx.cudnn(), s0, ctx.tf32(), act);
        w0_ = add_conv_weights(params.conv0, s0, offset);
    }
    track(*conv0_);
    for (size_t b = 0; b < plan_.blocks.size(); ++b) {
        const BlockPlan& block = plan_.blocks[b];
        const int64_t P = N * block.h * block.w;
        // The block's channels, and a bottleneck's (conv1's output), which may be wider.
        reduction(P, block.channels);
        reduction(P, cfg_.bottleneck_channels());
        std::vector<LayerOps> ops;
        for (size_t i = 0; i < block.layers.size(); ++i) {
            const DenseLayerParams& l = params.blocks[b][i];
            LayerOps o;
            const ConvShape s1 = conv_shape(l.conv1, N, block.h, block.w, 1, 0);
            const ConvShape s2 = conv_shape(l.conv2, N, block.h, block.w, 1, 1);
            o.conv1 = std::make_unique<Conv2d>(ctx.cudnn(), s1, ctx.tf32(), act);
            o.w1 = add_conv_weights(l.conv1, s1, offset);
            o.conv2 = std::make_unique<Conv2d>(ctx.cudnn(), s2, ctx.tf32(), act);
            o.w2 = add_conv_weights(l.conv2, s2, offset);
            track(*o.conv1), track(*o.conv2);
            ops.push_back(std::move(o));
        }
        layers_.push_back(std::move(ops));
        if (b + 1 < plan_.blocks.size()) {
            const ConvParams& c = params.transitions[b].conv;
            TransitionOps t;
            // Pool first, then the convolution on the pooled pixels (see TransitionPlan).
            const BlockPlan& next = plan_.blocks[b + 1];
            const ConvShape st = conv_shape(c, N, next.h, next.w, 1, 0);
            t.conv = std::make_unique<Conv2d>(ctx.cudnn(), st, ctx.tf32(), act);
            t.w = add_conv_weights(c, st, offset);
            track(*t.conv);
            transitions_.push_back(std::move(t));
        }
    }
    classifier_ = std::make_unique<Linear>(ctx.cublas(), N, params.classifier.in_features,
                                           params.classifier.out_features);
    workspace_ = DeviceBuffer(workspace);
    dweight_ohwi_ = DeviceBuffer(size_t(widest_weights) * dtype_bytes(act));
    reduction_scratch_ = DeviceBuffer(size_t(widest_reduction));
    load_weights();
}

DenseNet::Bytes DenseNet::bytes() const {
    return {.arena = arena_.size(), .workspace = workspace_.size(),
            .weight_copies = weights_ohwi_.size() + dweight_ohwi_.size(),
            .scratch = reduction_scratch_.size() + loss_.size()};
}

void DenseNet::load_weights() {
    for (const ConvWeights& c : conv_weights_)
        oihw_to_ohwi(c.ohwi, plan_.activation, device_.at(c.params->weight), c.shape, ctx_.stream());
}

FeatureMap DenseNet::map(size_t offset, int64_t h, int64_t w, int64_t c) const {
    return dense_map(raw(offset), plan_.activation, plan_.shape.batch, h, w, c);
}

FeatureMap DenseNet::f32_map(size_t offset, int64_t h, int64_t w, int64_t c) const {
    return dense_map(at(offset), plan_.shape.batch, h, w, c);
}

FeatureMap DenseNet::block_features(size_t b) const {
    const BlockPlan& block = plan_.blocks[b];
    return map(block.features, block.h, block.w, block.channels);
}

FeatureMap DenseNet::block_grad(size_t b) const {  // f32 in either precision: layers add into it
    const BlockPlan& block = plan_.blocks[b];
    return f32_map(block.grad, block.h, block.w, block.channels);
}

DenseNet::DeviceBn DenseNet::bn(const BatchNormParams& p) const {
    return {device_.at(p.weight),       device_.at(p.bias),        device_.at(p.dweight), device_.at(p.dbias),
            device_.at(p.running_mean), device_.at(p.running_var), p.channels,            p.num_batches_tracked};
}

float DenseNet::loss() const {
    float value = 0.0f;
    CUDA_CHECK(cudaMemcpyAsync(&value, loss_.bytes(), sizeof value, cudaMemcpyDeviceToHost, ctx_.stream()));
    ctx_.synchronize();
    return value;
}

// ---------------------------------------------------------------------------------------------
// Forward, as the CPU engine's (model/densenet.cpp), op for op.

void DenseNet::set_replicas(const DeviceReplicas& replicas) {
    replicas_ = replicas.several() ? &replicas : nullptr;
    if (!replicas_) return;
    const int64_t ranks = replicas.collectives->size();
    if (int64_t(replicas.shard_images.size()) != ranks ||
        replicas.shard_images[size_t(replicas.collectives->rank())] != plan_.shape.batch)
        throw std::invalid_argument("cuda::DenseNet::set_replicas: the shards do not match the replicas and this batch");
    if (!synchronised()) return;
    int64_t widest = std::max(cfg_.num_init_features, cfg_.bottleneck_channels());
    for (const BlockPlan& block : plan_.blocks) widest = std::max(widest, block.channels);
    moments_ = DeviceBuffer(size_t(2 * widest) * sizeof(double));
    gathered_moments_ = DeviceBuffer(size_t(ranks * 2 * widest) * sizeof(double));
    global_sums_ = DeviceBuffer(size_t(2 * widest) * sizeof(float));
    shard_images_ = DeviceBuffer(size_t(ranks) * sizeof(int64_t));
    CUDA_CHECK(cudaMemcpyAsync(shard_images_.bytes(), replicas.shard_images.data(), shard_images_.size(),
                               cudaMemcpyHostToDevice, ctx_.stream()));
    ctx_.synchronize();  // the host vector may go
}

int64_t DenseNet::stat_count(int64_t pixels) const {
    return synchronised() ? pixels / plan_.shape.batch * replicas_->global_batch() : pixels;
}

void DenseNet::train_stats(float* mean, float* var, const FeatureMap& x) {
    if (!synchronised()) return batch_stats(mean, var, x, reduction_scratch_.bytes(), ctx_.stream());
    auto* moments = reinterpret_cast<double*>(moments_.bytes());
    auto* gathered = reinterpret_cast<double*>(gathered_moments_.bytes());
    batch_moments(moments, x, reduction_scratch_.bytes(), ctx_.stream());
    replicas_->collectives->gather_all(moments, gathered, 2 * x.c, ctx_.stream());
    combine_moments(mean, var, gathered, reinterpret_cast<const int64_t*>(shard_images_.bytes()),
                    replicas_->collectives->size(), x.pixels() / plan_.shape.batch, x.c, ctx_.stream());
}

// A channel's batch statistics, computed once, and the running statistics of the batch norm that
// normalises it first.
void DenseNet::stats_and_running(float* mean, float* var, const FeatureMap& x, const DeviceBn& b) {
    train_stats(mean, var, x);
    update_running_stats(b.running_mean, b.running_var, mean, var, b.channels, stat_count(x.pixels()), ctx_.stream());
    *b.num_batches_tracked += 1;
}

void DenseNet::forward(const float* images_nchw, const int32_t* labels, StepMode mode) {
    if (mode == StepMode::train && pass_ != Pass::training)
        throw std::logic_error("this DenseNet was built for inference only");
    const RunShape& s = plan_.shape;
    nchw_to_nhwc(raw(plan_.input), plan_.activation, images_nchw, s.batch, cfg_.in_channels, s.height, s.width,
                 ctx_.stream());
    stem_forward(mode);
    for (size_t b = 0; b < plan_.blocks.size(); ++b) {
        for (size_t i = 0; i < plan_.blocks[b].layers.size(); ++i) dense_layer_forward(b, i, mode);
        if (b + 1 < plan_.blocks.size()) transition_forward(b, mode);
    }
    has_forward_for_backward_ = mode == StepMode::train;
    labels_ = labels;
    head_forward(mode);
}

void DenseNet::stem_forward(StepMode mode) {
    const int64_t F0 = cfg_.num_init_features;
    const BlockPlan& first = plan_.blocks[0];
    const FeatureMap conv0_out = map(plan_.conv0_out, plan_.stem_h, plan_.stem_w, F0);
    conv0_->forward(raw(plan_.input), w0_, conv0_out.data, workspace_.bytes());
    FeatureMap stem_out = conv0_out;
    if (cfg_.stem == Stem::imagenet) {
        const DeviceBn b = bn(*params_.norm0);
        const bool train = mode == StepMode::train;
        if (train) stats_and_running(at(plan_.stem_mean), at(plan_.stem_var), conv0_out, b);
        const FeatureMap relu0 = map(plan_.relu0_out, plan_.stem_h, plan_.stem_w, F0);
        bn_relu_forward(relu0, conv0_out, train ? at(plan_.stem_mean) : b.running_mean,
                        train ? at(plan_.stem_var) : b.running_var, b.weight, b.bias, ctx_.stream());
        stem_out = map(plan_.pool0_out, first.h, first.w, F0);
        pool0_->forward(relu0.data, stem_out.data);
    }
    copy_channels(block_features(0).channels(0, F0), stem_out, ctx_.stream());
    if (mode == StepMode::train) train_stats(at(first.mean), at(first.var), stem_out);
}

void DenseNet::activate_layer_input(size_t b, size_t i, const LayerIntermediates& where, StepMode mode) {
    const BlockPlan& block = plan_.blocks[b];
    const DeviceBn n1 = bn(params_.blocks[b][i].norm1);
    const FeatureMap x = block_features(b).channels(0, n1.channels);
    const bool train = mode == StepMode::train;
    bn_relu_forward(map(where.activated_input, x.h, x.w, n1.channels), x,
                    train ? at(block.mean) : n1.running_mean, train ? at(block.var) : n1.running_var, n1.weight,
                    n1.bias, ctx_.stream());
}

void DenseNet::activate_bottleneck(size_t b, size_t i, const LayerIntermediates& where, StepMode mode) {
    const BlockPlan& block = plan_.blocks[b];
    const LayerPlan& lp = block.layers[i];
    const DeviceBn n2 = bn(params_.blocks[b][i].norm2);
    const bool train = mode == StepMode::train;
    bn_relu_forward(map(where.activated_bottleneck, block.h, block.w, n2.channels),
                    map(where.bottleneck, block.h, block.w, n2.channels), train ? at(lp.bottleneck_mean) : n2.running_mean,
                    train ? at(lp.bottleneck_var) : n2.running_var, n2.weight, n2.bias, ctx_.stream());
}

void DenseNet::dense_layer_forward(size_t b, size_t i, StepMode mode) {
    const BlockPlan& block = plan_.blocks[b];
    const LayerPlan& lp = block.layers[i];
    const DenseLayerParams& l = params_.blocks[b][i];
    LayerOps& ops = layers_[b][i];
    const int64_t in = l.norm1.channels, k = cfg_.growth_rate, P = plan_.shape.batch * block.h * block.w;
    const bool train = mode == StepMode::train;
    if (train) {  // norm1 reuses the block's statistics of these channels
        const DeviceBn n1 = bn(l.norm1);
        update_running_stats(n1.running_mean, n1.running_var, at(block.mean), at(block.var), in, stat_count(P),
                             ctx_.stream());
        *n1.num_batches_tracked += 1;
    }
    const LayerIntermediates& buffers = lp.forward;
    activate_layer_input(b, i, buffers, mode);
    ops.conv1->forward(raw(buffers.activated_input), ops.w1, raw(buffers.bottleneck), workspace_.bytes());
    if (train)
        stats_and_running(at(lp.bottleneck_mean), at(lp.bottleneck_var),
                          map(buffers.bottleneck, block.h, block.w, l.norm2.channels), bn(l.norm2));
    activate_bottleneck(b, i, buffers, mode);
    const FeatureMap fresh = map(block.forward_scratch.fresh_features, block.h, block.w, k);
    ops.conv2->forward(raw(buffers.activated_bottleneck), ops.w2, fresh.data, workspace_.bytes());
    copy_channels(block_features(b).channels(in, k), fresh, ctx_.stream());
    if (train) train_stats(at(block.mean) + in, at(block.var) + in, fresh);
}

// The transition's norm, ReLU and 2x2 average pool in one pass, as the CPU engine's: the pooled
// input of its convolution, the full-size activation never written.
void DenseNet::pool_transition_input(size_t b, size_t pooled_input, StepMode mode) {
    const BlockPlan& block = plan_.blocks[b];
    const BlockPlan& next = plan_.blocks[b + 1];
    const DeviceBn n = bn(params_.transitions[b].norm);
    const FeatureMap x = block_features(b);
    const bool train = mode == StepMode::train;
    bn_relu_avg_pool_forward(map(pooled_input, next.h, next.w, x.c), x,
                             train ? at(block.mean) : n.running_mean, train ? at(block.var) : n.running_var, n.weight,
                             n.bias, ctx_.stream());
}

void DenseNet::transition_forward(size_t b, StepMode mode) {
    const BlockPlan& block = plan_.blocks[b];
    const BlockPlan& next = plan_.blocks[b + 1];
    const TransitionPlan& tp = plan_.transitions[b];
    TransitionOps& ops = transitions_[b];
    if (mode == StepMode::train) {
        const DeviceBn n = bn(params_.transitions[b].norm);
        update_running_stats(n.running_mean, n.running_var, at(block.mean), at(block.var), n.channels,
                             stat_count(plan_.shape.batch * block.h * block.w), ctx_.stream());
        *n.num_batches_tracked += 1;
    }
    pool_transition_input(b, tp.pooled_input, mode);
    ops.conv->forward(raw(tp.pooled_input), ops.w, raw(tp.conv_out), workspace_.bytes());
    const FeatureMap out = map(tp.conv_out, next.h, next.w, next.first_channels);
    copy_channels(block_features(b + 1).channels(0, next.first_channels), out, ctx_.stream());
    if (mode == StepMode::train) train_stats(at(next.mean), at(next.var), out);
}

void DenseNet::head_forward(StepMode mode) {
    const size_t last = plan_.blocks.size() - 1;
    const BlockPlan& block = plan_.blocks[last];
    const DeviceBn n5 = bn(params_.norm5);
    const FeatureMap x = block_features(last);
    const bool train = mode == StepMode::train;
    if (train) {
        update_running_stats(n5.running_mean, n5.running_var, at(block.mean), at(block.var), x.c,
                             stat_count(x.pixels()), ctx_.stream());
        *n5.num_batches_tracked += 1;
    }
    const FeatureMap activated = f32_map(plan_.head_activated, x.h, x.w, x.c);  // the pooling reads f32
    bn_relu_forward(activated, x, train ? at(block.mean) : n5.running_mean, train ? at(block.var) : n5.running_var,
                    n5.weight, n5.bias, ctx_.stream());
    global_avg_pool_forward(at(plan_.pooled), activated, ctx_.stream());
    const LinearParams& fc = params_.classifier;
    classifier_->forward(at(plan_.logits), at(plan_.pooled), device_.at(fc.weight), device_.at(fc.bias), ctx_.stream());
    log_softmax_nll_forward(loss_.floats(), at(plan_.log_probs), reinterpret_cast<LossRow*>(loss_.bytes()) + 1,
                            at(plan_.logits), labels_, x.n, fc.out_features, train ? label_smoothing_ : 0.0,
                            ctx_.stream());
}

// ---------------------------------------------------------------------------------------------
// Backward, in reverse order of forward, as the CPU engine's: parameter gradients assigned, a
// block's feature gradient assigned by the transition or the head and accumulated by every
// layer's norm1.

void DenseNet::conv_backward_weights(const Conv2d& conv, const ConvParams& p, const void* x, const void* dy) {
    conv.backward_weights(x, dy, dweight_ohwi_.bytes(), workspace_.bytes());
    ohwi_to_oihw(device_.at(p.dweight), dweight_ohwi_.bytes(), conv.type(), conv.shape(), ctx_.stream());
}

DenseNet::BnSums DenseNet::pass_two_sums(const DeviceBn& b) {
    if (!synchronised()) return {b.dweight, b.dbias};
    float* sums = global_sums_.floats();
    const int64_t C = b.channels;
    if (b.dbias == b.dweight + C) {  // the parameter table keeps a norm's gradients side by side: one call
        replicas_->collectives->sum(b.dweight, sums, 2 * C, ctx_.stream());
    } else {
        replicas_->collectives->sum(b.dweight, sums, C, ctx_.stream());
        replicas_->collectives->sum(b.dbias, sums + C, C, ctx_.stream());
    }
    return {sums, sums + C};
}

void DenseNet::bn_relu_backward_assign(const FeatureMap& dx, const DeviceBn& b, const FeatureMap& dy,
                                       const FeatureMap& x, const float* mean, const float* var, DyPixels dy_pixels) {
    bn_relu_backward_params(b.dweight, b.dbias, dy, x, mean, var, b.weight, b.bias, reduction_scratch_.bytes(),
                            ctx_.stream(), dy_pixels);
    const BnSums sums = pass_two_sums(b);
    bn_relu_backward_input(dx, Accumulate::assign, dy, x, mean, var, b.weight, b.bias, sums.dgamma, sums.dbeta,
                           stat_count(x.pixels()), ctx_.stream(), dy_pixels);
}

void DenseNet::backward() {
    if (!has_forward_for_backward_) throw std::logic_error("backward() needs a forward(..., train) first");
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
    const LinearParams& fc = params_.classifier;
    const int64_t N = plan_.shape.batch;
    const int64_t loss_batch = replicas_ ? replicas_->global_batch() : N;  // the loss is the global batch's mean
    log_softmax_nll_backward(at(plan_.d_logits), at(plan_.log_probs), labels_, N, fc.out_features, loss_batch,
                             label_smoothing_, ctx_.stream());
    classifier_->backward(at(plan_.d_pooled), device_.at(fc.dweight), device_.at(fc.dbias), at(plan_.d_logits),
                          at(plan_.pooled), device_.at(fc.weight), ctx_.stream());
    const FeatureMap x = block_features(last);
    const FeatureMap d_activated = f32_map(plan_.d_head_activated, x.h, x.w, x.c);
    global_avg_pool_backward(d_activated, at(plan_.d_pooled), ctx_.stream());
    bn_relu_backward_assign(block_grad(last), bn(params_.norm5), d_activated, x, at(block.mean), at(block.var));
}

void DenseNet::dense_layer_backward(size_t b, size_t i) {
    const BlockPlan& block = plan_.blocks[b];
    const LayerPlan& lp = block.layers[i];
    const DenseLayerParams& l = params_.blocks[b][i];
    LayerOps& ops = layers_[b][i];
    const int64_t in = l.norm1.channels, k = cfg_.growth_rate, C = l.norm2.channels;
    const LayerIntermediates& buffers = lp.backward;
    // Recomputing: conv1's input just before conv1's backward-weights reads it.
    const bool recompute = plan_.intermediates == Intermediates::recompute;
    if (recompute) activate_bottleneck(b, i, buffers, StepMode::train);

    const FeatureMap d_fresh = map(block.scratch.d_narrow, block.h, block.w, k);
    copy_channels(d_fresh, block_grad(b).channels(in, k), ctx_.stream());
    conv_backward_weights(*ops.conv2, l.conv2, raw(buffers.activated_bottleneck), d_fresh.data);
    ops.conv2->backward_data(d_fresh.data, ops.w2, raw(block.scratch.d_activated_bottleneck), workspace_.bytes());

    const FeatureMap d_bottleneck = map(block.scratch.d_bottleneck, block.h, block.w, C);
    bn_relu_backward_assign(d_bottleneck, bn(l.norm2), map(block.scratch.d_activated_bottleneck, block.h, block.w, C),
                            map(buffers.bottleneck, block.h, block.w, C), at(lp.bottleneck_mean), at(lp.bottleneck_var));
    const DeviceBn n1 = bn(l.norm1);
    const FeatureMap x = block_features(b).channels(0, in), d_input = map(block.scratch.d_input, block.h, block.w, in);
    ops.conv1->backward_data(d_bottleneck.data, ops.w1, d_input.data, workspace_.bytes());
    bn_relu_backward_params(n1.dweight, n1.dbias, d_input, x, at(block.mean), at(block.var), n1.weight, n1.bias,
                            reduction_scratch_.bytes(), ctx_.stream());
    const BnSums sums = pass_two_sums(n1);  // (its collectives, where there are any, before conv1's weights)
    if (recompute) activate_layer_input(b, i, buffers, StepMode::train);
    conv_backward_weights(*ops.conv1, l.conv1, raw(buffers.activated_input), d_bottleneck.data);
    bn_relu_backward_input(block_grad(b).channels(0, in), Accumulate::add, d_input, x, at(block.mean), at(block.var),
                           n1.weight, n1.bias, sums.dgamma, sums.dbeta, stat_count(x.pixels()), ctx_.stream());
}

void DenseNet::transition_backward(size_t b) {
    const BlockPlan& block = plan_.blocks[b];
    const BlockPlan& next = plan_.blocks[b + 1];
    const TransitionPlan& tp = plan_.transitions[b];
    const TransitionParams& t = params_.transitions[b];
    TransitionOps& ops = transitions_[b];
    if (plan_.intermediates == Intermediates::recompute) pool_transition_input(b, tp.backward_pooled_input, StepMode::train);
    const FeatureMap d_out = map(tp.scratch.d_narrow, next.h, next.w, next.first_channels);
    copy_channels(d_out, block_grad(b + 1).channels(0, next.first_channels), ctx_.stream());
    conv_backward_weights(*ops.conv, t.conv, raw(tp.backward_pooled_input), d_out.data);
    ops.conv->backward_data(d_out.data, ops.w, raw(tp.scratch.d_bottleneck), workspace_.bytes());
    // The pool's backward runs inside the norm's: it reads the pooled gradient.
    const FeatureMap x = block_features(b);
    bn_relu_backward_assign(block_grad(b), bn(t.norm), map(tp.scratch.d_bottleneck, next.h, next.w, x.c), x,
                            at(block.mean), at(block.var), DyPixels::avg_pool_2x2);
}

void DenseNet::stem_backward() {
    const int64_t F0 = cfg_.num_init_features;
    const BlockPlan& first = plan_.blocks[0];
    const FeatureMap d_stem = map(plan_.d_stem_out, first.h, first.w, F0);
    copy_channels(d_stem, block_grad(0).channels(0, F0), ctx_.stream());
    if (cfg_.stem == Stem::small_inputs) {
        conv_backward_weights(*conv0_, params_.conv0, raw(plan_.input), d_stem.data);
        return;
    }
    const DeviceBn n0 = bn(*params_.norm0);
    // cuDNN's max pooling finds its arg-max again from its input and output, which were forward's
    // scratch: relu0 is recomputed where conv0's output gradient goes next, and the pool's output
    // is read back out of the first block, where forward copied it, into the region that is
    // oneDNN's workspace on the CPU (ActivationPlan::pool0_workspace).
    const FeatureMap conv0_out = map(plan_.conv0_out, plan_.stem_h, plan_.stem_w, F0);
    const FeatureMap relu0 = map(plan_.d_conv0, plan_.stem_h, plan_.stem_w, F0);
    bn_relu_forward(relu0, conv0_out, at(plan_.stem_mean), at(plan_.stem_var), n0.weight, n0.bias, ctx_.stream());
    const FeatureMap pooled = map(plan_.pool0_workspace, first.h, first.w, F0);
    copy_channels(pooled, block_features(0).channels(0, F0), ctx_.stream());
    const FeatureMap d_relu0 = map(plan_.d_relu0, plan_.stem_h, plan_.stem_w, F0);
    pool0_->backward(d_stem.data, relu0.data, pooled.data, d_relu0.data);
    // relu0 is dead now: its region takes conv0's output gradient.
    const FeatureMap d_conv0 = map(plan_.d_conv0, plan_.stem_h, plan_.stem_w, F0);
    bn_relu_backward_assign(d_conv0, n0, d_relu0, conv0_out, at(plan_.stem_mean), at(plan_.stem_var));
    conv_backward_weights(*conv0_, params_.conv0, raw(plan_.input), d_conv0.data);
}

}  // namespace dn::cuda
