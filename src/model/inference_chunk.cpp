#include "model/inference_chunk.h"

#include <algorithm>
#include <fstream>
#include <string>

namespace dn {

namespace {
size_t read_last_level_cache_bytes() {
    size_t largest = 0;
    for (int index = 0; index < 8; ++index) {
        std::ifstream in("/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(index) + "/size");
        std::string text;
        if (!(in >> text) || text.empty()) continue;
        size_t unit = 1;
        if (text.back() == 'K') unit = size_t(1) << 10;
        if (text.back() == 'M') unit = size_t(1) << 20;
        try {
            largest = std::max(largest, size_t(std::stoull(text)) * unit);
        } catch (const std::exception&) {
        }
    }
    return largest > 0 ? largest : size_t(32) << 20;
}
}  // namespace

// Read once: the complexity report's batch searches ask for every batch they try.
size_t last_level_cache_bytes() {
    static const size_t bytes = read_last_level_cache_bytes();
    return bytes;
}

int64_t inference_chunk(const DenseNetConfig& cfg, const RunShape& shape, Precision precision, size_t cache_bytes) {
    auto arena = [&](int64_t images) {
        return plan_activations(cfg, {images, shape.height, shape.width}, Intermediates::recompute, Pass::inference,
                                precision)
            .memory.total_bytes();
    };
    if (arena(shape.batch) <= cache_bytes) return shape.batch;
    int64_t chunk = 1;
    while (chunk * 2 <= shape.batch && arena(chunk * 2) <= cache_bytes) chunk *= 2;
    return chunk;
}

RunShape executed_shape(const DenseNetConfig& cfg, const RunShape& shape, Pass pass, Precision precision) {
    if (pass == Pass::training || shape.batch <= 1) return shape;
    return {inference_chunk(cfg, shape, precision, last_level_cache_bytes()), shape.height, shape.width};
}

}  // namespace dn
