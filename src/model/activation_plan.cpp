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
    // from 1.5 times the bottleneck's width, densenet121 at 224x224 batch 32 keeps 321 MB of its
    // 552 and saves 82% of the recomputation (which cost 15-18% of the fp32 step, measured). The
    // kept ones share their bytes with the earlier blocks' gradients (StepTimeline), which paid for
    // the threshold's step down from twice the width: the arena went from 1176 MB to 1137 MB and
    // the fp32 step 2-6% shorter (three alternated runs; from 1.25 times, 1201 MB, no shorter). In
    // bf16 every one is kept: bf16 halves them, and what it saves elsewhere pays for them.
    auto keeps_bottleneck = [&](int64_t in) {
        return keep || (training && (precision == Precision::bf16 || 2 * in >= 3 * bottleneck));
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
            mid = std::max(mid, act(N * h * w * channels));  // the pooled input's gradient
            narrow = std::max(narrow, act(N * h * w * out));
            channels = out;
        }
    }
    // The head's BN-ReLU output feeds the global pooling in f32, and so does its gradient.
    wide = std::max(wide, f32(N * h * w * channels));

    // Then the regions, in the order a step first touches them.
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

    for (size_t b = 0; b < plan.blocks.size(); ++b) {
        BlockPlan& block = plan.blocks[b];
        const std::string name = "block" + std::to_string(b + 1);
        const int64_t P = N * block.h * block.w;
        block.features = m.reserve(name + ".features", size_t(act(P * block.channels)));
        if (training) block.grad = m.reserve_floats(name + ".grad", P * block.channels, timeline.block_grad(int(b)));
        block.mean = m.reserve_floats(name + ".mean", block.channels);
        block.var = m.reserve_floats(name + ".var", block.channels);
        for (int64_t i = 0; i < cfg.block_config[b]; ++i) {
            const std::string layer = name + ".layer" + std::to_string(i + 1);
            const int64_t in = block.first_channels + i * k;
            LayerPlan l;
            const Lifetime kept = timeline.kept_by_layer(int(b));
            l.activated_input = keep ? m.reserve(layer + ".activated_input", size_t(act(P * in)), kept) : shared_wide;
            l.keeps_bottleneck = keeps_bottleneck(in);
            l.bottleneck = l.keeps_bottleneck ? m.reserve(layer + ".bottleneck", size_t(act(P * bottleneck)), kept)
                                              : shared_bottleneck;
            l.activated_bottleneck =
                keep ? m.reserve(layer + ".activated_bottleneck", size_t(act(P * bottleneck)), kept)
                     : shared_activated_bottleneck;
            l.bottleneck_mean = m.reserve_floats(layer + ".bottleneck_mean", bottleneck);
            l.bottleneck_var = m.reserve_floats(layer + ".bottleneck_var", bottleneck);
            block.layers.push_back(l);
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

    const int64_t last = plan.blocks.back().channels;
    plan.pooled = m.reserve_floats("head.pooled", N * last);
    plan.logits = m.reserve_floats("head.logits", N * cfg.num_classes);
    plan.log_probs = m.reserve_floats("head.log_probs", N * cfg.num_classes);
    if (training) {
        plan.d_wide = m.reserve("grad.activated", size_t(wide));
        plan.d_bottleneck = m.reserve("grad.bottleneck", size_t(mid));
        plan.d_activated_bottleneck = m.reserve("grad.activated_bottleneck", size_t(mid));
        plan.d_narrow = m.reserve("grad.narrow", size_t(narrow));
        plan.d_pooled = m.reserve_floats("grad.pooled", N * last);
        plan.d_logits = m.reserve_floats("grad.logits", N * cfg.num_classes);
    }
    // Training stages in grad.activated; inference, which has no gradients, in shared.activated.
    plan.conv_staging = training ? plan.d_wide : shared_wide;
    plan.conv_staging_bytes = size_t(wide);
    return plan;
}

}  // namespace dn
