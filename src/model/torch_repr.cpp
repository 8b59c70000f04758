#include "model/torch_repr.h"

#include "model/layers.h"

#include <sstream>

namespace dn {

namespace {
std::string container_type(const std::string& segment) {
    if (segment == "features") return "Sequential";
    if (segment.starts_with("denseblock")) return "_DenseBlock";
    if (segment.starts_with("denselayer")) return "_DenseLayer";
    return "_Transition";
}

// Each module's extra_repr, as torch.nn writes it.
std::string module_repr(const Layer& l) {
    const std::string k = std::to_string(l.kernel), s = std::to_string(l.stride), p = std::to_string(l.padding);
    switch (l.kind) {
    case LayerKind::conv:
        return "Conv2d(" + std::to_string(l.in_channels) + ", " + std::to_string(l.out_channels) + ", kernel_size=(" +
               k + ", " + k + "), stride=(" + s + ", " + s + ")" +
               (l.padding ? ", padding=(" + p + ", " + p + ")" : "") + ", bias=False)";
    case LayerKind::batch_norm:
        return "BatchNorm2d(" + std::to_string(l.out_channels) +
               ", eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)";
    case LayerKind::relu: return "ReLU(inplace=True)";
    case LayerKind::max_pool:
        return "MaxPool2d(kernel_size=" + k + ", stride=" + s + ", padding=" + p + ", dilation=1, ceil_mode=False)";
    case LayerKind::avg_pool: return "AvgPool2d(kernel_size=" + k + ", stride=" + s + ", padding=" + p + ")";
    case LayerKind::linear:
        return "Linear(in_features=" + std::to_string(l.in_channels) +
               ", out_features=" + std::to_string(l.out_channels) + ", bias=True)";
    default: return layer_kind_name(l.kind);
    }
}

std::vector<std::string> split(const std::string& name) {
    std::vector<std::string> parts;
    std::stringstream in(name);
    for (std::string part; std::getline(in, part, '.');) parts.push_back(part);
    return parts;
}
}  // namespace

std::string torch_repr(const DenseNetConfig& cfg) {
    const int64_t size = min_input_size(cfg);
    std::ostringstream out;
    out << "DenseNet(\n";
    std::vector<std::string> open;  // the containers whose children are being printed
    auto indent = [&] { return std::string(2 * (open.size() + 1), ' '); };
    for (const Layer& l : describe_layers(cfg, 1, size, size)) {
        if (!l.module) continue;
        std::vector<std::string> path = split(l.name);
        const std::string leaf = path.back();
        path.pop_back();
        size_t common = 0;
        while (common < open.size() && common < path.size() && open[common] == path[common]) ++common;
        while (open.size() > common) {
            open.pop_back();
            out << indent() << ")\n";
        }
        for (size_t i = common; i < path.size(); ++i) {
            out << indent() << "(" << path[i] << "): " << container_type(path[i]) << "(\n";
            open.push_back(path[i]);
        }
        out << indent() << "(" << leaf << "): " << module_repr(l) << "\n";
    }
    while (!open.empty()) {
        open.pop_back();
        out << indent() << ")\n";
    }
    out << ")\n";
    return out.str();
}

}  // namespace dn
