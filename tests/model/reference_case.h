// defines: config_of (the DenseNetConfig of a make_reference.py case's metadata), floats_of, labels_of
#pragma once
#include "io/safetensors.h"
#include "model/config.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstring>
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

// A fixture's F32 tensor, copied out.
inline std::vector<float> floats_of(const SafetensorsFile& file, const std::string& name) {
    const auto& t = file.tensors().at(name);
    EXPECT_EQ(t.dtype, "F32") << name;
    std::vector<float> v(t.bytes / 4);
    std::memcpy(v.data(), t.data, t.bytes);
    return v;
}

// The fixture's labels (I32).
inline std::vector<int32_t> labels_of(const SafetensorsFile& file) {
    const auto& t = file.tensors().at("labels");
    std::vector<int32_t> v(t.bytes / 4);
    std::memcpy(v.data(), t.data, t.bytes);
    return v;
}

}  // namespace dn::test
