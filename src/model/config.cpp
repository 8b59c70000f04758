#include "model/config.h"

#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace dn {

DenseNetConfig densenet_preset(const std::string& name, int64_t num_classes) {
    DenseNetConfig c;
    c.arch = name;
    c.num_classes = num_classes;
    if (name == "densenet121") {
        c.growth_rate = 32, c.block_config = {6, 12, 24, 16}, c.num_init_features = 64;
    } else if (name == "densenet161") {
        c.growth_rate = 48, c.block_config = {6, 12, 36, 24}, c.num_init_features = 96;
    } else if (name == "densenet169") {
        c.growth_rate = 32, c.block_config = {6, 12, 32, 32}, c.num_init_features = 64;
    } else if (name == "densenet201") {
        c.growth_rate = 32, c.block_config = {6, 12, 48, 32}, c.num_init_features = 64;
    } else if (name.starts_with("densenet-bc-")) {
        // densenet-bc-L-k
        int64_t depth = 0, growth = 0;
        char end = 0;
        const bool parsed = std::sscanf(name.c_str() + 12, "%ld-%ld%c", &depth, &growth, &end) == 2;
        if (!parsed || depth < 10 || (depth - 4) % 6 != 0 || growth < 1 || growth > 128)
            throw std::invalid_argument("'" + name + "': densenet-bc-L-k needs a depth L of 6n + 4 (10 or more) and a "
                                        "growth rate k of 1 to 128, as densenet-bc-100-12");
        c.growth_rate = growth, c.block_config.assign(3, (depth - 4) / 6), c.num_init_features = 2 * growth;
        c.stem = Stem::small_inputs;
    } else {
        throw std::invalid_argument("unknown architecture '" + name +
                                    "' (known: densenet121, densenet161, densenet169, densenet201, densenet-bc-L-k)");
    }
    return c;
}

int64_t transition_channels(const DenseNetConfig& cfg, int64_t channels) {
    return int64_t(std::floor(double(channels) * cfg.compression));
}

int64_t block_input_size(const DenseNetConfig& cfg, int64_t input_size, size_t block) {
    int64_t size = input_size;
    if (cfg.stem == Stem::imagenet) {
        size = (size + 2 * 3 - 7) / 2 + 1;  // conv0 7x7/2, padding 3
        size = (size + 2 * 1 - 3) / 2 + 1;  // pool0 3x3/2, padding 1
    }
    for (size_t b = 0; b < block; ++b) size /= 2;  // each transition's 2x2/2 average pool
    return size;
}

int64_t min_input_size(const DenseNetConfig& cfg) {
    int64_t size = 1;
    while (block_input_size(cfg, size, cfg.block_config.size() - 1) < 1) ++size;
    return size;
}

void validate(const DenseNetConfig& cfg) {
    auto fail = [](const std::string& why) { throw std::invalid_argument("invalid DenseNet configuration: " + why); };
    if (cfg.growth_rate <= 0) fail("growth rate must be positive");
    if (cfg.block_config.empty()) fail("at least one dense block is needed");
    for (int64_t layers : cfg.block_config)
        if (layers <= 0) fail("every block needs at least one layer");
    if (cfg.num_init_features <= 0) fail("initial features must be positive");
    if (cfg.bn_size <= 0) fail("bn_size must be positive");
    if (!(cfg.compression > 0.0 && cfg.compression <= 1.0)) fail("compression must be in (0, 1]");
    if (cfg.num_classes <= 0) fail("the number of classes must be positive");
    if (cfg.in_channels != 1 && cfg.in_channels != 3) fail("input channels must be 1 or 3");
}

bool same_architecture(const DenseNetConfig& a, const DenseNetConfig& b) {
    return a.growth_rate == b.growth_rate && a.block_config == b.block_config &&
           a.num_init_features == b.num_init_features && a.bn_size == b.bn_size && a.compression == b.compression &&
           a.stem == b.stem && a.in_channels == b.in_channels;
}

}  // namespace dn
