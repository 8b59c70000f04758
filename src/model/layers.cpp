#include "model/layers.h"

#include <algorithm>
#include <stdexcept>

namespace dn {

namespace {
// Follows one (N,C,H,W) tensor through torchvision's forward, appending a Layer per step.
struct Walk {
    int64_t n, c, h, w;
    std::vector<Layer> layers;

    Layer& add(std::string name, LayerKind kind, bool module = true) {
        Layer l;
        l.name = std::move(name);
        l.kind = kind;
        l.module = module;
        l.in_channels = c;
        layers.push_back(l);
        return layers.back();
    }
    Layer& finish(Layer& l) {
        l.out_channels = c;
        l.output = {n, c, h, w};
        return l;
    }

    void conv(const std::string& name, int64_t out, int64_t kernel, int64_t stride, int64_t padding) {
        Layer& l = add(name, LayerKind::conv);
        l.kernel = kernel, l.stride = stride, l.padding = padding;
        h = (h + 2 * padding - kernel) / stride + 1;
        w = (w + 2 * padding - kernel) / stride + 1;
        l.parameters = out * c * kernel * kernel;
        l.macs = n * h * w * out * c * kernel * kernel;
        c = out;
        finish(l);
    }
    void batch_norm(const std::string& name) {
        Layer& l = add(name, LayerKind::batch_norm);
        l.parameters = 2 * c;
        l.running_stats = 2 * c;
        finish(l);
    }
    void relu(const std::string& name, bool module = true) {
        Layer& l = add(name, LayerKind::relu, module);
        l.in_place = true;
        finish(l);
    }
    void pool(const std::string& name, LayerKind kind, int64_t kernel, int64_t stride, int64_t padding) {
        Layer& l = add(name, kind);
        l.kernel = kernel, l.stride = stride, l.padding = padding;
        h = (h + 2 * padding - kernel) / stride + 1;
        w = (w + 2 * padding - kernel) / stride + 1;
        finish(l);
    }
    void concat(const std::string& name, int64_t channels) {
        Layer& l = add(name, LayerKind::concat, false);
        c = channels;
        finish(l);
    }
};
}  // namespace

std::vector<Layer> describe_layers(const DenseNetConfig& cfg, int64_t batch, int64_t height, int64_t width) {
    validate(cfg);
    if (batch <= 0) throw std::invalid_argument("batch size must be positive");
    const int64_t smallest = min_input_size(cfg);
    if (std::min(height, width) < smallest)
        throw std::invalid_argument("input " + std::to_string(height) + "x" + std::to_string(width) +
                                    " is too small for " + cfg.arch + ": it needs at least " +
                                    std::to_string(smallest) + "x" + std::to_string(smallest) +
                                    " (resize or pad the images to that or larger)");

    Walk x{batch, cfg.in_channels, height, width, {}};
    const int64_t F0 = cfg.num_init_features, k = cfg.growth_rate;
    if (cfg.stem == Stem::imagenet) {
        x.conv("features.conv0", F0, 7, 2, 3);
        x.batch_norm("features.norm0");
        x.relu("features.relu0");
        x.pool("features.pool0", LayerKind::max_pool, 3, 2, 1);
    } else {
        x.conv("features.conv0", F0, 3, 1, 1);
    }

    int64_t channels = F0;
    for (size_t b = 0; b < cfg.block_config.size(); ++b) {
        const std::string block = "features.denseblock" + std::to_string(b + 1);
        for (int64_t i = 0; i < cfg.block_config[b]; ++i) {
            // _DenseLayer.bn_function concatenates the block's feature list, even a list of one.
            const std::string layer = block + ".denselayer" + std::to_string(i + 1);
            x.concat(layer + ".cat", channels + i * k);
            x.batch_norm(layer + ".norm1");
            x.relu(layer + ".relu1");
            x.conv(layer + ".conv1", cfg.bottleneck_channels(), 1, 1, 0);
            x.batch_norm(layer + ".norm2");
            x.relu(layer + ".relu2");
            x.conv(layer + ".conv2", k, 3, 1, 1);
        }
        channels += cfg.block_config[b] * k;
        x.concat(block + ".cat", channels);
        if (b + 1 < cfg.block_config.size()) {
            const std::string t = "features.transition" + std::to_string(b + 1);
            x.batch_norm(t + ".norm");
            x.relu(t + ".relu");
            x.conv(t + ".conv", transition_channels(cfg, channels), 1, 1, 0);
            x.pool(t + ".pool", LayerKind::avg_pool, 2, 2, 0);
            channels = x.c;
        }
    }
    x.batch_norm("features.norm5");
    // DenseNet.forward: F.relu(inplace=True), F.adaptive_avg_pool2d to 1x1, torch.flatten (a view).
    x.relu("relu", false);
    Layer& gap = x.add("adaptive_avg_pool2d", LayerKind::adaptive_avg_pool, false);
    x.h = 1, x.w = 1;
    x.finish(gap);
    Layer& fc = x.add("classifier", LayerKind::linear);
    fc.parameters = cfg.num_classes * channels + cfg.num_classes;
    fc.macs = batch * channels * cfg.num_classes;
    x.c = cfg.num_classes;
    x.finish(fc);
    return std::move(x.layers);
}

const char* layer_kind_name(LayerKind kind) {
    switch (kind) {
    case LayerKind::conv: return "Conv2d";
    case LayerKind::batch_norm: return "BatchNorm2d";
    case LayerKind::relu: return "ReLU";
    case LayerKind::max_pool: return "MaxPool2d";
    case LayerKind::avg_pool: return "AvgPool2d";
    case LayerKind::concat: return "cat";
    case LayerKind::adaptive_avg_pool: return "adaptive_avg_pool2d";
    case LayerKind::linear: return "Linear";
    }
    return "?";
}

int64_t total_macs(const std::vector<Layer>& layers) {
    int64_t sum = 0;
    for (const Layer& l : layers) sum += l.macs;
    return sum;
}

int64_t total_parameters(const std::vector<Layer>& layers) {
    int64_t sum = 0;
    for (const Layer& l : layers) sum += l.parameters;
    return sum;
}

}  // namespace dn
