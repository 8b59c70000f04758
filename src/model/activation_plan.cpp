#include "model/activation_plan.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace dn {

namespace {
// The parts of a step, numbered in the order both engines run them (forward: the stem, each block
// and the transition after it, the head; in training, backward the other way round), for the
// lifetimes of what one part, or the parts from one to another, use.
struct StepTimeline {
    int blocks = 0;
    int stem_forward() const { return 0; }
    int block_forward(int b) const { return 1 + 2 * b; }
    int transition_forward(int b) const { return 2 + 2 * b; }  // after block b
    int head_forward() const { return 2 * blocks; }
    int head_backward() const { return 2 * blocks + 1; }
    int block_backward(int b) const { return 4 * blocks - 2 * b; }
    int transition_backward(int b) const { return block_backward(b) - 1; }  // between blocks b + 1 and b
    int stem_backward() const { return 4 * blocks + 1; }

    Lifetime during(int part) const { return {part, part}; }
    // A block's features are written from the part before it on (the stem or a transition writes
    // its first channels) and read last by the part after it (forward) or, in training, by the
    // one before it (backward: the stem or the transition reads the gradient of the channels they
    // wrote, with the features).
    Lifetime features(int b, bool training) const {
        const int written = b == 0 ? stem_forward() : transition_forward(b - 1);
        if (!training) return {written, b + 1 == blocks ? head_forward() : transition_forward(b)};
        return {written, b == 0 ? stem_backward() : transition_backward(b - 1)};
    }
    // A block's gradient is assigned by what reads the whole block (the transition after it or
    // the head) and read last as its features are. So it never meets the kept intermediates of
    // a later block: they share bytes.
    Lifetime block_grad(int b) const {
        const int written = b + 1 == blocks ? head_backward() : transition_backward(b);
        return {written, features(b, true).last};
    }
    // What a dense layer or a transition keeps for its backward.
    Lifetime kept_by_layer(int b) const { return {block_forward(b), block_backward(b)}; }
    Lifetime kept_by_transition(int b) const { return {transition_forward(b), transition_backward(b)}; }
};

// oneDNN's Winograd (fp32 only) stages conv2's input and output in its blocked layout, channels
// padded to 16, the output on a cache line of its own (Conv2d::staging_bytes). The engine's own
// (winograd_matmul, on CPUs without AVX-512) takes its tiles in groups that fit what it is given.
size_t winograd_staging_bytes(int64_t pixels, int64_t in, int64_t out, Precision precision) {
    if (precision != Precision::fp32) return 0;
    auto padded = [](int64_t c) { return (c + 15) / 16 * 16; };
    return size_t((pixels * padded(in) * 4 + 63) / 64 * 64 + pixels * padded(out) * 4);
}
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
    const int B = int(cfg.block_config.size());
    ActivationPlan plan;
    plan.shape = shape;
    plan.intermediates = intermediates;
    plan.precision = precision;
    plan.activation = operand_type(precision);
    MemoryPlan& m = plan.memory;
    const StepTimeline timeline{B};
    // Bytes of `count` activations (bf16 in bf16 precision), and of `count` floats.
    const int64_t act_size = int64_t(dtype_bytes(plan.activation));
    auto act = [&](int64_t count) { return size_t(count * act_size); };
    auto f32 = [](int64_t count) { return size_t(count * 4); };

    // The shapes first.
    plan.stem_h = cfg.stem == Stem::imagenet ? (shape.height - 1) / 2 + 1 : shape.height;
    plan.stem_w = cfg.stem == Stem::imagenet ? (shape.width - 1) / 2 + 1 : shape.width;
    const int64_t stem_pixels = N * plan.stem_h * plan.stem_w, F0 = cfg.num_init_features;
    int64_t channels = F0;
    int64_t h = cfg.stem == Stem::imagenet ? (plan.stem_h - 1) / 2 + 1 : plan.stem_h;
    int64_t w = cfg.stem == Stem::imagenet ? (plan.stem_w - 1) / 2 + 1 : plan.stem_w;
    for (int b = 0; b < B; ++b) {
        BlockPlan block;
        block.h = h, block.w = w;
        block.first_channels = channels;
        channels += cfg.block_config[size_t(b)] * k;
        block.channels = channels;
        block.layers.resize(size_t(cfg.block_config[size_t(b)]));
        plan.blocks.push_back(block);
        if (b + 1 < B) {
            channels = transition_channels(cfg, channels);
            h /= 2, w /= 2;
            plan.transitions.emplace_back();
        }
    }
    auto pixels = [&](int b) { return N * plan.blocks[size_t(b)].h * plan.blocks[size_t(b)].w; };
    auto name_of = [](const char* part, int b) { return part + std::to_string(b + 1); };
    const BlockPlan& first = plan.blocks.front();
    const BlockPlan& last = plan.blocks.back();

    // What lives all step (in inference, the input and conv0's output only while the stem runs),
    // in the order a step first touches it; then what lives from one part to another; then each
    // part's own. The small whole-step regions (statistics) go first: they would otherwise take
    // the gaps that regions with disjoint lifetimes leave each other, and split them.
    const Lifetime stem_input = training ? Lifetime{} : timeline.during(timeline.stem_forward());
    plan.input = m.reserve("input", act(N * shape.height * shape.width * cfg.in_channels), stem_input);
    plan.conv0_out = m.reserve("stem.conv0_out", act(stem_pixels * F0), stem_input);
    if (cfg.stem == Stem::imagenet) {
        plan.stem_mean = m.reserve_floats("stem.mean", F0);
        plan.stem_var = m.reserve_floats("stem.var", F0);
        // oneDNN's max-pool workspace holds at most one 32-bit index per output element.
        plan.pool0_workspace_bytes = size_t(pixels(0) * F0) * 4;
        if (training) plan.pool0_workspace = m.reserve("stem.pool0_workspace", plan.pool0_workspace_bytes);
    }
    for (int b = 0; b < B; ++b) {
        BlockPlan& block = plan.blocks[size_t(b)];
        block.mean = m.reserve_floats(name_of("block", b) + ".mean", block.channels);
        block.var = m.reserve_floats(name_of("block", b) + ".var", block.channels);
        for (size_t i = 0; i < block.layers.size(); ++i) {
            const std::string layer = name_of("block", b) + ".layer" + std::to_string(i + 1);
            block.layers[i].bottleneck_mean = m.reserve_floats(layer + ".bottleneck_mean", bottleneck);
            block.layers[i].bottleneck_var = m.reserve_floats(layer + ".bottleneck_var", bottleneck);
        }
    }
    plan.pooled = m.reserve_floats("head.pooled", N * last.channels);
    plan.logits = m.reserve_floats("head.logits", N * cfg.num_classes);
    plan.log_probs = m.reserve_floats("head.log_probs", N * cfg.num_classes);
    if (training) {
        plan.d_pooled = m.reserve_floats("grad.pooled", N * last.channels);
        plan.d_logits = m.reserve_floats("grad.logits", N * cfg.num_classes);
    }

    for (int b = 0; b < B; ++b) {
        BlockPlan& block = plan.blocks[size_t(b)];
        const std::string name = name_of("block", b);
        const int64_t P = pixels(b);
        block.features = m.reserve(name + ".features", act(P * block.channels), timeline.features(b, training));
        if (training) block.grad = m.reserve(name + ".grad", f32(P * block.channels), timeline.block_grad(b));
        if (!training) continue;
        // Every bottleneck is kept (Intermediates): at 224x224, batch 32, 552 MB in fp32. Until
        // block 1's forward scratch and backward scratch were each their own, the two that cost
        // least to recompute were not kept; keeping them too measured 1-2% faster.
        const Lifetime kept = timeline.kept_by_layer(b);
        for (size_t i = 0; i < block.layers.size(); ++i) {
            const std::string layer = name + ".layer" + std::to_string(i + 1);
            const int64_t in = block.first_channels + int64_t(i) * k;
            LayerIntermediates& kept_here = block.layers[i].forward;
            kept_here.bottleneck = m.reserve(layer + ".bottleneck", act(P * bottleneck), kept);
            if (keep) {
                kept_here.activated_input = m.reserve(layer + ".activated_input", act(P * in), kept);
                kept_here.activated_bottleneck = m.reserve(layer + ".activated_bottleneck", act(P * bottleneck), kept);
            }
            block.layers[i].backward = kept_here;
        }
        if (keep && b + 1 < B) {
            TransitionPlan& t = plan.transitions[size_t(b)];
            t.pooled_input = m.reserve(name_of("transition", b) + ".pooled_input",
                                       act(pixels(b + 1) * block.channels), timeline.kept_by_transition(b));
            t.backward_pooled_input = t.pooled_input;
        }
    }

    // Forward's scratch.
    const Lifetime stem = timeline.during(timeline.stem_forward());
    if (cfg.stem == Stem::imagenet) {
        plan.relu0_out = m.reserve("stem.relu0_out", act(stem_pixels * F0), stem);
        plan.pool0_out = m.reserve("stem.pool0_out", act(pixels(0) * F0), stem);
    }
    for (int b = 0; b < B; ++b) {
        BlockPlan& block = plan.blocks[size_t(b)];
        const std::string name = name_of("block", b) + ".scratch";
        const int64_t P = pixels(b), widest_input = block.channels - k;
        const Lifetime part = timeline.during(timeline.block_forward(b));
        const size_t staging = winograd_staging_bytes(P, bottleneck, k, precision);
        // Inference stages conv2's operands where conv1's input was (BlockForwardScratch).
        const size_t activated_input_bytes = training ? act(P * widest_input) : std::max(act(P * widest_input), staging);
        if (!keep) {  // the block's layers share them, one after the other
            const size_t activated_input = m.reserve(name + ".activated_input", activated_input_bytes, part);
            const size_t activated_bottleneck = m.reserve(name + ".activated_bottleneck", act(P * bottleneck), part);
            for (LayerPlan& l : block.layers) {
                l.forward.activated_input = activated_input;
                l.forward.activated_bottleneck = activated_bottleneck;
            }
        }
        if (!training) {  // training keeps every bottleneck (above)
            const size_t bottleneck_out = m.reserve(name + ".bottleneck", act(P * bottleneck), part);
            for (LayerPlan& l : block.layers) l.forward.bottleneck = bottleneck_out;
        }
        block.forward_scratch.fresh_features = m.reserve(name + ".fresh_features", act(P * k), part);
        block.forward_scratch.conv_staging =
            training ? Staging{m.reserve(name + ".conv_staging", staging, part), staging}
                     : Staging{block.layers.front().forward.activated_input, activated_input_bytes};
        if (b + 1 < B) {
            TransitionPlan& t = plan.transitions[size_t(b)];
            const std::string tname = name_of("transition", b) + ".scratch";
            const Lifetime tpart = timeline.during(timeline.transition_forward(b));
            const int64_t next = pixels(b + 1);
            if (!keep) t.pooled_input = m.reserve(tname + ".pooled_input", act(next * block.channels), tpart);
            t.conv_out = m.reserve(tname + ".conv_out", act(next * plan.blocks[size_t(b) + 1].first_channels), tpart);
        }
    }
    // The head's BN-ReLU output feeds the global pooling in f32, and so does its gradient.
    plan.head_activated = m.reserve("head.activated", f32(pixels(B - 1) * last.channels),
                                    timeline.during(timeline.head_forward()));
    if (!training) return plan;

    // Backward's scratch.
    plan.d_head_activated = m.reserve("head.grad_scratch.activated", f32(pixels(B - 1) * last.channels),
                                      timeline.during(timeline.head_backward()));
    for (int b = 0; b < B; ++b) {
        BlockPlan& block = plan.blocks[size_t(b)];
        const std::string name = name_of("block", b) + ".grad_scratch";
        const int64_t P = pixels(b), widest_input = block.channels - k;
        const Lifetime part = timeline.during(timeline.block_backward(b));
        if (!keep) {
            const std::string recomputed = name_of("block", b) + ".backward_scratch";
            const size_t activated_input = m.reserve(recomputed + ".activated_input", act(P * widest_input), part);
            const size_t activated_bottleneck =
                m.reserve(recomputed + ".activated_bottleneck", act(P * bottleneck), part);
            for (LayerPlan& l : block.layers) {
                l.backward.activated_input = activated_input;
                l.backward.activated_bottleneck = activated_bottleneck;
            }
        }
        BackwardScratch& s = block.scratch;
        const size_t d_input_bytes = std::max(act(P * widest_input), winograd_staging_bytes(P, bottleneck, k, precision));
        s.d_input = m.reserve(name + ".input", d_input_bytes, part);
        s.conv_staging = {s.d_input, d_input_bytes};
        s.d_narrow = m.reserve(name + ".narrow", act(P * k), part);
        s.d_bottleneck = m.reserve(name + ".bottleneck", act(P * bottleneck), part);
        s.d_activated_bottleneck = m.reserve(name + ".activated_bottleneck", act(P * bottleneck), part);
        if (b + 1 < B) {
            TransitionPlan& t = plan.transitions[size_t(b)];
            const std::string tname = name_of("transition", b) + ".grad_scratch";
            const Lifetime tpart = timeline.during(timeline.transition_backward(b));
            const int64_t next = pixels(b + 1);
            if (!keep)
                t.backward_pooled_input = m.reserve(name_of("transition", b) + ".backward_scratch.pooled_input",
                                                    act(next * block.channels), tpart);
            t.scratch.d_narrow = m.reserve(tname + ".narrow", act(next * plan.blocks[size_t(b) + 1].first_channels), tpart);
            t.scratch.d_bottleneck = m.reserve(tname + ".pooled_input", act(next * block.channels), tpart);
        }
    }
    const Lifetime stem_backward = timeline.during(timeline.stem_backward());
    plan.d_stem_out = m.reserve("stem.grad_scratch.out", act(pixels(0) * first.first_channels), stem_backward);
    if (cfg.stem == Stem::imagenet) {
        plan.d_relu0 = m.reserve("stem.grad_scratch.relu0", act(stem_pixels * F0), stem_backward);
        plan.d_conv0 = m.reserve("stem.grad_scratch.conv0", act(stem_pixels * F0), stem_backward);
    }
    return plan;
}

}  // namespace dn
