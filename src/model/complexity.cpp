#include "model/complexity.h"

#include "model/inference_chunk.h"
#include "model/parameters.h"
#include "ops/conv.h"
#include "ops/linear.h"
#include "ops/pool.h"

#include <unistd.h>

#include <stdexcept>
#include <string>

namespace dn {

ModelBytes model_bytes(const DenseNetConfig& cfg) {
    ModelBytes m;
    const Parameters params(cfg);
    for (const TensorEntry& e : params.entries()) {
        switch (e.role) {
        case TensorRole::parameter: m.parameters += e.numel(); break;
        case TensorRole::running_stat: m.running_stats += e.numel(); break;
        case TensorRole::batch_count: m.batch_counts += e.numel(); break;
        }
    }
    return m;
}

namespace {
int64_t input_bytes(const DenseNetConfig& cfg, const RunShape& shape) {
    return 4 * shape.batch * cfg.in_channels * shape.height * shape.width;
}
}  // namespace

int64_t naive_forward_bytes(const DenseNetConfig& cfg, const RunShape& shape) {
    int64_t bytes = input_bytes(cfg, shape);
    for (const Layer& l : describe_layers(cfg, shape.batch, shape.height, shape.width)) {
        if (!l.in_place) bytes += 4 * l.output_numel();
        if (l.kind == LayerKind::max_pool) bytes += 8 * l.output_numel();
    }
    return bytes;
}

int64_t autograd_saved_bytes(const DenseNetConfig& cfg, const RunShape& shape) {
    const auto layers = describe_layers(cfg, shape.batch, shape.height, shape.width);
    int64_t bytes = input_bytes(cfg, shape);  // conv0 keeps it for its weight gradient
    for (size_t i = 0; i < layers.size(); ++i) {
        const Layer& l = layers[i];
        const LayerKind next = i + 1 < layers.size() ? layers[i + 1].kind : LayerKind::linear;
        switch (l.kind) {
        // Its output (which the in-place ReLU after it overwrites and saves), and its per-channel
        // batch mean and inverse standard deviation.
        case LayerKind::batch_norm: bytes += 4 * l.output_numel() + 2 * 4 * l.out_channels; break;
        case LayerKind::concat: bytes += 4 * l.output_numel(); break;  // the next BatchNorm's input
        // A BatchNorm or an average pool keeps its input; a torch.cat keeps nothing, so conv2's
        // output and the small-input stem's conv0 output are not saved.
        case LayerKind::conv:
            if (next == LayerKind::batch_norm || next == LayerKind::avg_pool) bytes += 4 * l.output_numel();
            break;
        case LayerKind::max_pool: bytes += 8 * l.output_numel(); break;        // its int64 arg-max
        case LayerKind::adaptive_avg_pool: bytes += 4 * l.output_numel(); break;  // the classifier's input
        default: break;
        }
    }
    return bytes;
}

int64_t engine_state_bytes(const ModelBytes& m, Pass pass) {
    const int64_t adam = pass == Pass::training ? 2 * 4 * m.parameters : 0;
    return 2 * 4 * m.parameters + 4 * m.running_stats + 8 * m.batch_counts + adam;
}

namespace {
// A transition's 1x1 convolution: the average pool follows it. The engine pools first
// (TransitionPlan), so the convolution runs on the pool's output pixels.
bool is_transition_conv(const std::vector<Layer>& layers, size_t i) {
    return layers[i].kind == LayerKind::conv && i + 1 < layers.size() && layers[i + 1].kind == LayerKind::avg_pool;
}
}  // namespace

size_t dnnl_scratchpad_bytes(const DenseNetConfig& cfg, const RunShape& shape, Pass pass, Precision precision) {
    DnnlContext ctx;
    const DType act = operand_type(precision);
    const int64_t N = shape.batch;
    int64_t h = shape.height, w = shape.width, c = cfg.in_channels;
    // The primitives DenseNet's constructor builds, with the same shapes; they register their
    // scratchpad need with the context as they are created.
    const std::vector<Layer> layers = describe_layers(cfg, N, shape.height, shape.width);
    for (size_t i = 0; i < layers.size(); ++i) {
        const Layer& l = layers[i];
        const char* name = l.name.c_str();
        switch (l.kind) {
        case LayerKind::conv:
            if (is_transition_conv(layers, i)) {
                const Layer& pool = layers[i + 1];
                Pool2d(ctx, PoolShape{N, c, h, w, pool.kernel, pool.stride, pool.padding}, PoolKind::average, pass,
                       pool.name.c_str(), act);
                Conv2d(ctx, ConvShape{N, c, pool.output[2], pool.output[3], l.out_channels, 1, 1, 0}, pass, name, act);
                ++i;
                c = pool.output[1], h = pool.output[2], w = pool.output[3];
                continue;
            }
            Conv2d(ctx, ConvShape{N, c, h, w, l.out_channels, l.kernel, l.stride, l.padding}, pass, name, act);
            break;
        case LayerKind::max_pool:
        case LayerKind::avg_pool:
            Pool2d(ctx, PoolShape{N, c, h, w, l.kernel, l.stride, l.padding},
                   l.kind == LayerKind::max_pool ? PoolKind::max : PoolKind::average, pass, name, act);
            break;
        case LayerKind::linear: Linear(ctx, N, l.in_channels, l.out_channels, name); break;
        default: break;
        }
        c = l.output[1], h = l.output[2], w = l.output[3];
    }
    return ctx.scratchpad_bytes();
}

EngineMemory engine_memory(const DenseNetConfig& cfg, const RunShape& shape, Pass pass, Intermediates intermediates,
                           bool with_scratchpad, Precision precision) {
    EngineMemory m;
    const RunShape executed = executed_shape(cfg, shape, pass, precision);
    m.activations = plan_activations(cfg, executed, intermediates, pass, precision).memory.total_bytes();
    m.state = size_t(engine_state_bytes(model_bytes(cfg), pass));
    if (with_scratchpad) m.scratchpad = dnnl_scratchpad_bytes(cfg, executed, pass, precision);
    if (pass == Pass::inference)
        m.batch = size_t(4 * shape.batch * (cfg.in_channels * shape.height * shape.width + 2 * cfg.num_classes));
    return m;
}

int64_t max_batch(const DenseNetConfig& cfg, int64_t input_size, Pass pass, Intermediates intermediates,
                  size_t budget, bool with_scratchpad, Precision precision) {
    auto without_scratchpad = [&](int64_t batch) {
        return engine_memory(cfg, {batch, input_size, input_size}, pass, intermediates, false, precision).total();
    };
    // The largest batch whose arena and state fit in `room`: doubling, then bisection.
    auto largest = [&](size_t room) -> int64_t {
        if (without_scratchpad(1) > room) return 0;
        int64_t fits = 1, fails = 2;
        const int64_t limit = int64_t(1) << 32;
        while (fails < limit && without_scratchpad(fails) <= room) fits = fails, fails *= 2;
        if (fails >= limit && without_scratchpad(fails) <= room) return fails;
        while (fails - fits > 1) {
            const int64_t mid = fits + (fails - fits) / 2;
            (without_scratchpad(mid) <= room ? fits : fails) = mid;
        }
        return fits;
    };
    int64_t batch = largest(budget);
    if (!with_scratchpad || batch == 0) return batch;

    auto total = [&](int64_t b) {
        return engine_memory(cfg, {b, input_size, input_size}, pass, intermediates, true, precision).total();
    };
    // The scratchpad barely moves with the batch: search again with the room it leaves, then step
    // to the exact edge.
    const size_t scratchpad =
        engine_memory(cfg, {batch, input_size, input_size}, pass, intermediates, true, precision).scratchpad;
    batch = scratchpad >= budget ? 0 : largest(budget - scratchpad);
    while (batch > 0 && total(batch) > budget) --batch;
    while (total(batch + 1) <= budget) ++batch;
    return batch;
}

double Complexity::seconds(int64_t images, Pass pass) const {
    const double flops = 2.0 * double(macs) * double(images) * (pass == Pass::training ? 3.0 : 1.0);
    return flops / (options.device_tflops * 1e12);
}

Complexity analyse_complexity(const DenseNetConfig& cfg, const ComplexityOptions& o) {
    if (o.batch <= 0) throw std::invalid_argument("--batch-size must be positive");
    if (o.epoch_images <= 0) throw std::invalid_argument("--epoch-images must be positive");
    if (o.device_tflops < 0) throw std::invalid_argument("--device-tflops must not be negative");
    if (o.memory_gib < 0) throw std::invalid_argument("--memory-gib must not be negative");
    Complexity c;
    c.cfg = cfg;
    c.options = o;
    c.layers = describe_layers(cfg, 1, o.input_size, o.input_size);
    c.model = model_bytes(cfg);
    c.macs = total_macs(c.layers);
    const RunShape shape{o.batch, o.input_size, o.input_size};
    // A transition's convolution runs on its pooled pixels: a quarter of its MACs.
    int64_t conv0 = 0, transition_macs_saved = 0;
    for (size_t i = 0; i < c.layers.size(); ++i) {
        const Layer& l = c.layers[i];
        if (l.name == "features.conv0") conv0 = l.macs;
        if (is_transition_conv(c.layers, i)) {
            const Layer& pool = c.layers[i + 1];
            transition_macs_saved += l.macs - l.macs / (l.output[2] * l.output[3]) * (pool.output[2] * pool.output[3]);
        }
    }
    c.engine_training_macs = 3 * (c.macs - transition_macs_saved) - conv0;

    c.naive_bytes = naive_forward_bytes(cfg, shape);
    c.autograd_saved = autograd_saved_bytes(cfg, shape);
    const Precision p = o.precision;
    c.inference = engine_memory(cfg, shape, Pass::inference, Intermediates::recompute, o.with_scratchpad, p);
    c.training_recompute = engine_memory(cfg, shape, Pass::training, Intermediates::recompute, o.with_scratchpad, p);
    // Keeping changes the arena only: the primitives, hence the scratchpad, are the same.
    c.training_keep = engine_memory(cfg, shape, Pass::training, Intermediates::keep, false, p);
    c.training_keep.scratchpad = c.training_recompute.scratchpad;

    c.budget = o.memory_gib > 0 ? size_t(o.memory_gib * double(size_t(1) << 30))
                                : size_t(sysconf(_SC_PHYS_PAGES)) * size_t(sysconf(_SC_PAGE_SIZE));
    c.max_batch_inference = max_batch(cfg, o.input_size, Pass::inference, Intermediates::recompute, c.budget,
                                      o.with_scratchpad, p);
    c.max_batch_training = max_batch(cfg, o.input_size, Pass::training, Intermediates::recompute, c.budget,
                                     o.with_scratchpad, p);
    c.max_batch_training_keep = max_batch(cfg, o.input_size, Pass::training, Intermediates::keep, c.budget,
                                          o.with_scratchpad, p);
    return c;
}

namespace {
nlohmann::ordered_json memory_json(const EngineMemory& m) {
    return {{"activations", m.activations}, {"state", m.state}, {"scratchpad", m.scratchpad}, {"batch", m.batch},
            {"total", m.total()}};
}
}  // namespace

nlohmann::ordered_json complexity_json(const Complexity& c) {
    using json = nlohmann::ordered_json;
    const ComplexityOptions& o = c.options;
    json layers = json::array();
    for (const Layer& l : c.layers)
        layers.push_back({{"name", l.name}, {"kind", layer_kind_name(l.kind)}, {"output", l.output},
                          {"parameters", l.parameters}, {"macs", l.macs}, {"flops", 2 * l.macs}});
    json time = nullptr;
    if (o.device_tflops > 0)
        time = {{"device_tflops", o.device_tflops},
                {"epoch_images", o.epoch_images},
                {"steps_per_epoch", (o.epoch_images + o.batch - 1) / o.batch},
                {"training_step_s", c.seconds(o.batch, Pass::training)},
                {"training_epoch_s", c.seconds(o.epoch_images, Pass::training)},
                {"inference_step_s", c.seconds(o.batch, Pass::inference)},
                {"inference_epoch_s", c.seconds(o.epoch_images, Pass::inference)}};
    return {
        {"arch", c.cfg.arch},
        {"num_classes", c.cfg.num_classes},
        {"in_channels", c.cfg.in_channels},
        {"input_size", o.input_size},
        {"batch_size", o.batch},
        {"precision", precision_name(o.precision)},
        {"parameters", c.model.parameters},
        {"buffers", {{"running_stats", c.model.running_stats}, {"num_batches_tracked", c.model.batch_counts}}},
        {"model_bytes", {{"fp32", c.model.fp32()}, {"bf16", c.model.bf16()}}},
        {"macs", c.macs},
        {"flops", 2 * c.macs},
        {"macs_per_step", c.macs * o.batch},
        {"flops_per_step", 2 * c.macs * o.batch},
        {"training_flops_per_step", 3 * 2 * c.macs * o.batch},
        {"engine_training_macs_per_image", c.engine_training_macs},
        {"activation_bytes",
         {{"naive", c.naive_bytes},
          {"pytorch_saved_for_backward", c.autograd_saved},
          {"engine_inference", c.inference.activations},
          {"engine_training_recompute", c.training_recompute.activations},
          {"engine_training_keep", c.training_keep.activations}}},
        {"engine_memory_bytes",
         {{"inference", memory_json(c.inference)},
          {"training", memory_json(c.training_recompute)},
          {"training_keep", memory_json(c.training_keep)}}},
        {"scratchpad_measured", o.with_scratchpad},
        {"memory_budget_bytes", c.budget},
        {"max_batch",
         {{"inference", c.max_batch_inference},
          {"training", c.max_batch_training},
          {"training_keep", c.max_batch_training_keep}}},
        {"time", time},
        {"conventions",
         {{"macs", "per image: multiply-accumulates of every convolution and of the classifier; batch norm, "
                   "ReLU, pooling and the classifier's bias add are not counted"},
          {"flops", "2 per MAC"},
          {"training", "a training step costs 3 forwards (backward-data and backward-weights about one each)"},
          {"naive", "every tensor torchvision's forward creates, none freed: input, every module, torch.cat and "
                    "head output (in-place ReLUs add nothing), max-pool indices"},
          {"pytorch_saved_for_backward", "tensors autograd keeps between forward and backward in torchvision's "
                                         "DenseNet (memory_efficient=False), input included, parameters excluded"},
          {"engine", "activations: this engine's arena (plan_activations); state: parameters, gradients and "
                     "buffers, plus Adam's two moments in training; scratchpad: oneDNN's, where measured; "
                     "oneDNN's reordered weight copies are not counted"},
          {"model_bytes", "state_dict: parameters and buffers; bf16 as model.to(torch.bfloat16), "
                          "num_batches_tracked stays int64"}}},
        {"layers", layers},
    };
}

}  // namespace dn
