#include "model/activation_plan.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace dn {

namespace {
// The parts of a training step, numbered in the order both engines run them (forward: the stem,
// each block and the transition after it, the head; backward the other way round), for the
// lifetimes of the regions that live for part of a step only.
struct StepTimeline {
    int blocks = 0;
    int block_forward(int b) const { return 1 + 2 * b; }
    int transition_forward(int b) const { return 2 + 2 * b; }  // after block b
    int head_backward() const { return 2 * blocks + 1; }
    int block_backward(int b) const { return 4 * blocks - 2 * b; }
    int transition_backward(int b) const { return block_backward(b) - 1; }  // between blocks b + 1 and b
    int stem_backward() const { return 4 * blocks + 1; }

    // A block's gradient is assigned by what reads the whole block (the transition after it or
    // the head) and read last by what wrote its first channels (the transition before it or the
    // stem). So it never meets the kept intermediates of a later block: they share bytes.
    Lifetime block_grad(int b) const {
        const int written = b + 1 == blocks ? head_backward() : transition_backward(b);
        return {written, b == 0 ? stem_backward() : transition_backward(b - 1)};
    }
    // Scratch that only one part's backward uses.
    Lifetime block_scratch(int b) const { return {block_backward(b), block_backward(b)}; }
    Lifetime transition_scratch(int b) const { return {transition_backward(b), transition_backward(b)}; }
    Lifetime stem_scratch() const { return {stem_backward(), stem_backward()}; }
    // What a dense layer keeps for its backward.
    Lifetime kept_by_layer(int b) const { return {block_forward(b), block_backward(b)}; }
    Lifetime kept_by_transition(int b) const { return {transition_forward(b), transition_backward(b)}; }
};
}  // namespace

ActivationPlan plan_activations(const DenseNetConfig& cfg, const RunShape& shape, Intermediates intermediates,
                                Pass pass, Precision precision) {
    validate(cfg);
    if (shape.batch <= 0) throw std::invalid_argument("batch size must be positive");
    const int64_t smallest = min_input_size(cfg);
    if (std::min(shape.height, shape.width) < smallest)
        throw std::invalid_argument("input " + std::to_string(shape.height) + "x" + std::to_string(shape.width) +
                                    " is too small for " + cfg.arch + ": it needs at least " +
                                    std::to_string(smallest) + "x" + std::to_string(smallest));

    const bool training = pass == Pass::training;
    const bool keep = training && intermediates == Intermediates::keep;
    const int64_t N = shape.batch, k = cfg.growth_rate, bottleneck = cfg.bottleneck_channels();
    ActivationPlan plan;
    plan.shape = shape;
    plan.intermediates = intermediates;
    plan.precision = precision;
    plan.activation = operand_type(precision);
    // Which conv1 outputs recomputing keeps. Recomputing one costs `in` multiply-adds per value
    // (its input width) and keeping it one stored value, so the layers with wide inputs are kept:
    // from the bottleneck's width on, densenet121 at 224x224 batch 32 keeps 450 MB of its 552
    // and saves 94% of the recomputation (which cost 15-18% of the fp32 step, measured). They fit
    // because what lives for part of a step shares bytes (StepTimeline): the arena is 1147 MB, where
    // keeping from twice the width without sharing took 1176. Measured in alternated runs of fp32
    // training: from 1.5 times the width (1018 MB) 11.5-12.2 images/s, from 1 times 12.6, from
    // every layer (1250 MB, too near 0.3x PyTorch's memory) 12.8-13.0. In bf16 every one is kept:
    // bf16 halves them, and what it saves elsewhere pays for them.
    auto keeps_bottleneck = [&](int64_t in) {
        return keep || (training && (precision == Precision::bf16 || in >= bottleneck));
    };
    MemoryPlan& m = plan.memory;
    const StepTimeline timeline{int(cfg.block_config.size())};
    // Bytes of `count` activations (bf16 in bf16 precision), and of `count` floats.
    const int64_t act_size = int64_t(dtype_bytes(plan.activation));
    auto act = [&](int64_t count) { return count * act_size; };
    auto f32 = [](int64_t count) { return count * 4; };

    // First the sizes in bytes of everything that is shared, as the largest of its users.
    int64_t wide = 0, mid = 0, narrow = 0;
    plan.stem_h = cfg.stem == Stem::imagenet ? (shape.height - 1) / 2 + 1 : shape.height;
    plan.stem_w = cfg.stem == Stem::imagenet ? (shape.width - 1) / 2 + 1 : shape.width;
    const int64_t stem_pixels = N * plan.stem_h * plan.stem_w;
    if (cfg.stem == Stem::imagenet) wide = act(stem_pixels * cfg.num_init_features);  // relu0 and its gradient

    int64_t channels = cfg.num_init_features;
    int64_t h = cfg.stem == Stem::imagenet ? (plan.stem_h - 1) / 2 + 1 : plan.stem_h;
    int64_t w = cfg.stem == Stem::imagenet ? (plan.stem_w - 1) / 2 + 1 : plan.stem_w;
    narrow = act(N * h * w * channels);  // the stem's dense output
    for (size_t b = 0; b < cfg.block_config.size(); ++b) {
        BlockPlan block;
        block.h = h, block.w = w;
        block.first_channels = channels;
        channels += cfg.block_config[b] * k;
        block.channels = channels;
        const int64_t P = N * h * w;
        wide = std::max(wide, act(P * channels));
        mid = std::max(mid, act(P * bottleneck));
        narrow = std::max(narrow, act(P * k));
        plan.blocks.push_back(block);
        if (b + 1 < cfg.block_config.size()) {
            const int64_t out = transition_channels(cfg, channels);
            h /= 2, w /= 2;
            mid = std::max(mid, act(N * h * w * channels));  // a transition's pooled input
            narrow = std::max(narrow, act(N * h * w * out));
            channels = out;
        }
    }
    // The head's BN-ReLU output feeds the global pooling in f32, and so does its gradient.
    wide = std::max(wide, f32(N * h * w * channels));

    // Then the regions: first those that live all step, in the order a step first touches them,
    // then those that live for part of it.
    plan.input = m.reserve("input", size_t(act(N * shape.height * shape.width * cfg.in_channels)));
    plan.conv0_out = m.reserve("stem.conv0_out", size_t(act(stem_pixels * cfg.num_init_features)));
    if (cfg.stem == Stem::imagenet) {
        plan.stem_mean = m.reserve_floats("stem.mean", cfg.num_init_features);
        plan.stem_var = m.reserve_floats("stem.var", cfg.num_init_features);
        // oneDNN's max-pool workspace holds at most one 32-bit index per output element.
        plan.pool0_workspace_bytes = size_t(N * plan.blocks[0].h * plan.blocks[0].w * cfg.num_init_features) * 4;
        if (training) plan.pool0_workspace = m.reserve("stem.pool0_workspace", plan.pool0_workspace_bytes);
    }
    const size_t shared_wide = m.reserve("shared.activated", size_t(wide));
    plan.relu0_out = shared_wide;
    plan.head_activated = shared_wide;
    const size_t shared_bottleneck = m.reserve("shared.bottleneck", size_t(mid));
    const size_t shared_activated_bottleneck = m.reserve("shared.activated_bottleneck", size_t(mid));
    const size_t shared_narrow = m.reserve("shared.narrow", size_t(narrow));
    plan.pool0_out = shared_narrow;
    plan.fresh_features = shared_narrow;

    // First what lives all step, then what lives for part of it: the small whole-step regions
    // (statistics) would otherwise take the gaps that regions with disjoint lifetimes leave each
    // other, and split them.
    const int64_t last = plan.blocks.back().channels;
    for (size_t b = 0; b < plan.blocks.size(); ++b) {
        BlockPlan& block = plan.blocks[b];
        const std::string name = "block" + std::to_string(b + 1);
        block.features = m.reserve(name + ".features", size_t(act(N * block.h * block.w * block.channels)));
        block.mean = m.reserve_floats(name + ".mean", block.channels);
        block.var = m.reserve_floats(name + ".var", block.channels);
        block.layers.resize(size_t(cfg.block_config[b]));
        for (size_t i = 0; i < block.layers.size(); ++i) {
            const std::string layer = name + ".layer" + std::to_string(i + 1);
            block.layers[i].bottleneck_mean = m.reserve_floats(layer + ".bottleneck_mean", bottleneck);
            block.layers[i].bottleneck_var = m.reserve_floats(layer + ".bottleneck_var", bottleneck);
        }
    }
    plan.pooled = m.reserve_floats("head.pooled", N * last);
    plan.logits = m.reserve_floats("head.logits", N * cfg.num_classes);
    plan.log_probs = m.reserve_floats("head.log_probs", N * cfg.num_classes);
    if (training) {
        plan.d_wide = m.reserve("grad.activated", size_t(wide));
        plan.d_pooled = m.reserve_floats("grad.pooled", N * last);
        plan.d_logits = m.reserve_floats("grad.logits", N * cfg.num_classes);
    }

    for (size_t b = 0; b < plan.blocks.size(); ++b) {
        BlockPlan& block = plan.blocks[b];
        const std::string name = "block" + std::to_string(b + 1);
        const int64_t P = N * block.h * block.w;
        if (training) block.grad = m.reserve_floats(name + ".grad", P * block.channels, timeline.block_grad(int(b)));
        const Lifetime kept = timeline.kept_by_layer(int(b));
        for (size_t i = 0; i < block.layers.size(); ++i) {
            const std::string layer = name + ".layer" + std::to_string(i + 1);
            const int64_t in = block.first_channels + int64_t(i) * k;
            LayerPlan& l = block.layers[i];
            l.activated_input = keep ? m.reserve(layer + ".activated_input", size_t(act(P * in)), kept) : shared_wide;
            l.keeps_bottleneck = keeps_bottleneck(in);
            l.bottleneck = l.keeps_bottleneck ? m.reserve(layer + ".bottleneck", size_t(act(P * bottleneck)), kept)
                                              : shared_bottleneck;
            l.activated_bottleneck =
                keep ? m.reserve(layer + ".activated_bottleneck", size_t(act(P * bottleneck)), kept)
                     : shared_activated_bottleneck;
        }
        if (b + 1 < plan.blocks.size()) {
            const BlockPlan& next = plan.blocks[b + 1];
            const int64_t pooled_pixels = N * next.h * next.w;
            TransitionPlan t;
            t.activated = shared_wide;
            t.pooled_input = keep ? m.reserve("transition" + std::to_string(b + 1) + ".pooled_input",
                                                  size_t(act(pooled_pixels * block.channels)),
                                                  timeline.kept_by_transition(int(b)))
                                      : shared_bottleneck;
            t.conv_out = shared_narrow;
            plan.transitions.push_back(t);
        }
    }

    if (training) {
        // Each part's own backward scratch, last, in the room the parts before leave free.
        for (size_t b = 0; b < plan.blocks.size(); ++b) {
            BlockPlan& block = plan.blocks[b];
            const std::string name = "block" + std::to_string(b + 1) + ".grad_scratch";
            const int64_t P = N * block.h * block.w;
            const Lifetime backward = timeline.block_scratch(int(b));
            block.scratch.d_narrow = m.reserve(name + ".narrow", size_t(act(P * k)), backward);
            block.scratch.d_bottleneck = m.reserve(name + ".bottleneck", size_t(act(P * bottleneck)), backward);
            block.scratch.d_activated_bottleneck =
                m.reserve(name + ".activated_bottleneck", size_t(act(P * bottleneck)), backward);
        }
        for (size_t b = 0; b < plan.transitions.size(); ++b) {
            const BlockPlan& next = plan.blocks[b + 1];
            const std::string name = "transition" + std::to_string(b + 1) + ".grad_scratch";
            const int64_t P = N * next.h * next.w;
            const Lifetime backward = timeline.transition_scratch(int(b));
            TransitionPlan& t = plan.transitions[b];
            t.scratch.d_narrow = m.reserve(name + ".narrow", size_t(act(P * next.first_channels)), backward);
            t.scratch.d_bottleneck =
                m.reserve(name + ".pooled_input", size_t(act(P * plan.blocks[b].channels)), backward);
        }
        const BlockPlan& first = plan.blocks.front();
        const int64_t stem_out = N * first.h * first.w * first.first_channels;
        plan.d_stem_out = m.reserve("stem.grad_scratch.narrow", size_t(act(stem_out)), timeline.stem_scratch());
    }
    // Training stages in grad.activated; inference, which has no gradients, in shared.activated.
    plan.conv_staging = training ? plan.d_wide : shared_wide;
    plan.conv_staging_bytes = size_t(wide);
    return plan;
}

}  // namespace dn
