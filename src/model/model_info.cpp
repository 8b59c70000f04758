#include "model/model_info.h"

#include <nlohmann/json.hpp>

#include <stdexcept>

namespace dn {

std::map<std::string, std::string> model_metadata(const ModelInfo& info) {
    const DenseNetConfig& c = info.config;
    std::map<std::string, std::string> m{
        {"format", "densenet.cpp"},
        {"arch", c.arch},
        {"num_classes", std::to_string(c.num_classes)},
        {"in_channels", std::to_string(c.in_channels)},
        {"growth_rate", std::to_string(c.growth_rate)},
        {"block_config", nlohmann::json(c.block_config).dump()},
        {"stem", c.stem == Stem::imagenet ? "imagenet" : "small_inputs"},
    };
    if (info.input_size > 0) m["input_size"] = std::to_string(info.input_size);
    if (!info.class_names.empty()) m["class_names"] = nlohmann::json(info.class_names).dump();
    if (!info.dataset.empty()) m["dataset"] = info.dataset;
    m["normalize"] = info.normalize;
    return m;
}

namespace {
const SafetensorsFile::Tensor& tensor(const SafetensorsFile& file, const std::string& name) {
    auto it = file.tensors().find(name);
    if (it == file.tensors().end())
        throw std::runtime_error("'" + file.path() + "' is not a DenseNet checkpoint: it has no '" + name + "'");
    return it->second;
}

bool has(const SafetensorsFile& file, const std::string& name) { return file.tensors().count(name) != 0; }

}  // namespace

ModelInfo read_model_info(const SafetensorsFile& file) {
    ModelInfo info;
    DenseNetConfig& c = info.config;
    auto fail = [&](const std::string& why) {
        throw std::runtime_error("'" + file.path() + "' is not a DenseNet checkpoint: " + why);
    };
    // A weight's shape, checked to have `rank` positive dimensions before anything divides by them.
    auto shape = [&](const std::string& name, size_t rank) {
        const auto& s = tensor(file, name).shape;
        if (s.size() != rank) fail("'" + name + "' has " + std::to_string(s.size()) + " dimensions");
        for (int64_t d : s)
            if (d <= 0) fail("'" + name + "' has an empty dimension");
        return s;
    };
    const auto conv0 = shape("features.conv0.weight", 4);  // (F0, C_in, K, K)
    c.num_init_features = conv0[0];
    c.in_channels = conv0[1];
    c.stem = has(file, "features.norm0.weight") ? Stem::imagenet : Stem::small_inputs;
    const auto conv2 = shape("features.denseblock1.denselayer1.conv2.weight", 4);  // (k, bn*k, 3, 3)
    c.growth_rate = conv2[0];
    if (conv2[1] % c.growth_rate != 0) fail("its bottleneck width is not a multiple of its growth rate");
    c.bn_size = conv2[1] / c.growth_rate;
    c.block_config.clear();
    for (int b = 1; has(file, "features.denseblock" + std::to_string(b) + ".denselayer1.conv1.weight"); ++b) {
        int64_t layers = 0;
        while (has(file, "features.denseblock" + std::to_string(b) + ".denselayer" + std::to_string(layers + 1) + ".conv1.weight"))
            ++layers;
        c.block_config.push_back(layers);
    }
    if (has(file, "features.transition1.conv.weight")) {
        const auto t = shape("features.transition1.conv.weight", 4);  // (out, in, 1, 1)
        c.compression = double(t[0]) / double(t[1]);
    }
    c.num_classes = shape("classifier.weight", 2)[0];
    try {
        validate(c);
    } catch (const std::invalid_argument& e) {
        fail(e.what());
    }
    c.arch = "custom";
    for (const char* name : {"densenet121", "densenet161", "densenet169", "densenet201"})
        if (same_architecture(c, densenet_preset(name, c.num_classes))) c.arch = name;

    const auto& meta = file.metadata();
    auto get = [&](const char* key) { auto it = meta.find(key); return it == meta.end() ? std::string() : it->second; };
    try {
        if (!get("input_size").empty()) info.input_size = std::stoll(get("input_size"));
        if (!get("class_names").empty()) info.class_names = nlohmann::json::parse(get("class_names")).get<std::vector<std::string>>();
    } catch (const std::exception& e) {
        throw std::runtime_error("'" + file.path() + "' has malformed metadata: " + e.what());
    }
    info.dataset = get("dataset");
    if (!get("normalize").empty()) info.normalize = get("normalize");
    if (!info.class_names.empty() && int64_t(info.class_names.size()) != c.num_classes)
        throw std::runtime_error("'" + file.path() + "' names " + std::to_string(info.class_names.size()) +
                                 " classes but its classifier has " + std::to_string(c.num_classes));
    return info;
}

}  // namespace dn
