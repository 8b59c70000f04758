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

bool same_structure(const DenseNetConfig& a, const DenseNetConfig& b) {
    return a.growth_rate == b.growth_rate && a.block_config == b.block_config &&
           a.num_init_features == b.num_init_features && a.bn_size == b.bn_size && a.compression == b.compression &&
           a.stem == b.stem;
}
}  // namespace

ModelInfo read_model_info(const SafetensorsFile& file) {
    ModelInfo info;
    DenseNetConfig& c = info.config;
    const auto& conv0 = tensor(file, "features.conv0.weight").shape;  // (F0, C_in, K, K)
    c.num_init_features = conv0.at(0);
    c.in_channels = conv0.at(1);
    c.stem = has(file, "features.norm0.weight") ? Stem::imagenet : Stem::small_inputs;
    const auto& conv2 = tensor(file, "features.denseblock1.denselayer1.conv2.weight").shape;  // (k, bn*k, 3, 3)
    c.growth_rate = conv2.at(0);
    c.bn_size = conv2.at(1) / c.growth_rate;
    c.block_config.clear();
    for (int b = 1; has(file, "features.denseblock" + std::to_string(b) + ".denselayer1.conv1.weight"); ++b) {
        int64_t layers = 0;
        while (has(file, "features.denseblock" + std::to_string(b) + ".denselayer" + std::to_string(layers + 1) + ".conv1.weight"))
            ++layers;
        c.block_config.push_back(layers);
    }
    if (has(file, "features.transition1.conv.weight")) {
        const auto& t = tensor(file, "features.transition1.conv.weight").shape;  // (out, in, 1, 1)
        c.compression = double(t.at(0)) / double(t.at(1));
    }
    c.num_classes = tensor(file, "classifier.weight").shape.at(0);
    c.arch = "custom";
    for (const char* name : {"densenet121", "densenet161", "densenet169", "densenet201"})
        if (same_structure(c, densenet_preset(name, c.num_classes)) && c.in_channels == 3) c.arch = name;

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
