// defines: floats_of, labels_of (a make_reference.py fixture's tensors); config_of, from reference_config.h
#pragma once
#include "io/safetensors.h"
#include "model/config.h"
#include "model/float32_bar.h"
#include "model/reference_config.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstring>
#include <string>
#include <vector>

namespace dn::test {

// A fixture's F32 tensor, copied out (float32_bar.h's reader, which refuses any other dtype).
inline std::vector<float> floats_of(const SafetensorsFile& file, const std::string& name) {
    return fixture_floats(file, name);
}

// The fixture's labels (I32).
inline std::vector<int32_t> labels_of(const SafetensorsFile& file) {
    const auto& t = file.tensors().at("labels");
    std::vector<int32_t> v(t.bytes / 4);
    std::memcpy(v.data(), t.data, t.bytes);
    return v;
}

}  // namespace dn::test
