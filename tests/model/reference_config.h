// defines: config_of (the DenseNetConfig of a make_reference.py case's metadata), without
//          GoogleTest, so that the GPU parity check (a plain program) shares it
#pragma once
#include "model/config.h"

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace dn::test {

inline DenseNetConfig config_of(const nlohmann::json& c) {
    DenseNetConfig cfg;
    if (c["arch"] != "custom") {
        cfg = densenet_preset(c["arch"], c["num_classes"]);
    } else {
        cfg.arch = "custom";
        cfg.growth_rate = c["growth_rate"];
        cfg.block_config = c["block_config"].get<std::vector<int64_t>>();
        cfg.num_init_features = c["num_init_features"];
        cfg.bn_size = c["bn_size"];
        cfg.num_classes = c["num_classes"];
    }
    cfg.in_channels = c.value("in_channels", 3);
    cfg.stem = c.value("stem", "") == "small_inputs" ? Stem::small_inputs : Stem::imagenet;
    return cfg;
}

}  // namespace dn::test
