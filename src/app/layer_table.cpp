#include "app/layer_table.h"

#include <cstdio>

namespace dn {

std::string group_digits(int64_t n) {
    const std::string digits = std::to_string(n < 0 ? -n : n);
    std::string out(n < 0 ? "-" : "");
    for (size_t i = 0; i < digits.size(); ++i) {
        if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
        out += digits[i];
    }
    return out;
}

std::string bytes_text(int64_t bytes) {
    const char* units[] = {"KiB", "MiB", "GiB", "TiB"};
    double value = double(bytes);
    int unit = -1;
    while (value >= 1024.0 && unit < 3) value /= 1024.0, ++unit;
    char scaled[32] = "";
    if (unit >= 0) std::snprintf(scaled, sizeof scaled, " (%.1f %s)", value, units[unit]);
    std::string text = group_digits(bytes);
    text += " B";
    text += scaled;
    return text;
}

namespace {
std::string type_of(const Layer& l) {
    if (l.module) return layer_kind_name(l.kind);
    if (l.kind == LayerKind::relu) return "F.relu";
    if (l.kind == LayerKind::concat) return "torch.cat";
    return std::string("F.") + layer_kind_name(l.kind);
}

std::string shape_text(const Layer& l) {
    const size_t dims = l.kind == LayerKind::linear ? 2 : 4;
    std::string text = "(";
    for (size_t i = 0; i < dims; ++i) {
        if (i) text += ", ";
        text += std::to_string(l.output[i]);
    }
    text += ")";
    return text;
}
}  // namespace

void print_layer_table(const std::vector<Layer>& layers, bool with_flops) {
    std::printf("%-42s %-22s %-20s %12s %16s%s\n", "layer", "type", "output", "parameters", "MACs",
                with_flops ? "            FLOPs" : "");
    for (const Layer& l : layers) {
        std::printf("%-42s %-22s %-20s %12s %16s", l.name.c_str(), type_of(l).c_str(), shape_text(l).c_str(),
                    group_digits(l.parameters).c_str(), group_digits(l.macs).c_str());
        if (with_flops) std::printf(" %16s", group_digits(2 * l.macs).c_str());
        std::printf("\n");
    }
    const int64_t macs = total_macs(layers);
    std::printf("%-42s %-22s %-20s %12s %16s", "total", "", "", group_digits(total_parameters(layers)).c_str(),
                group_digits(macs).c_str());
    if (with_flops) std::printf(" %16s", group_digits(2 * macs).c_str());
    std::printf("\n");
}

}  // namespace dn
