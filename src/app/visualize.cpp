#include "app/commands.h"

#include "io/safetensors.h"
#include "interop/torch_import.h"
#include "report/weight_grid.h"
#include "tensor/shape_text.h"

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace dn {

namespace {
struct VisualizeOptions {
    std::string checkpoint, compare, out;
    std::vector<std::string> layers{"features.conv0", "features.denseblock1.denselayer1.conv1"};
    int64_t output_channel = 0;
};

struct Weight {
    std::string name;
    std::vector<int64_t> shape;
    std::vector<float> values;  // copied: the file's data need not be float-aligned
};

// The layer's conv weight, by state_dict name with or without ".weight".
Weight read_weight(const SafetensorsFile& file, const std::string& layer) {
    const auto& tensors = file.tensors();
    auto it = tensors.find(layer);
    if (it == tensors.end()) it = tensors.find(layer + ".weight");
    if (it == tensors.end()) {
        std::string convs;
        int64_t count = 0;
        for (const auto& [name, t] : tensors)
            if (t.shape.size() == 4 && count++ < 3) convs += (convs.empty() ? "" : ", ") + name;
        throw std::runtime_error("no layer '" + layer + "' in '" + file.path() + "'" +
                                 (count ? "; its " + std::to_string(count) + " conv weights include " + convs : "; it has no conv weights"));
    }
    const auto& [name, t] = *it;
    if (t.shape.size() != 4)
        throw std::runtime_error("'" + name + "' in '" + file.path() + "' has shape " + shape_text(t.shape) +
                                 ", not a convolution weight (O, I, KH, KW)");
    if (t.dtype != "F32")
        throw std::runtime_error("'" + name + "' in '" + file.path() + "' is " + t.dtype + "; visualize reads F32 weights");
    Weight w{name, t.shape, std::vector<float>(t.bytes / sizeof(float))};
    std::memcpy(w.values.data(), t.data, t.bytes);
    return w;
}

// "features.denseblock1.denselayer1.conv1.weight" -> "denseblock1_denselayer1_conv1"
std::string file_stem(std::string name) {
    if (name.ends_with(".weight")) name.resize(name.size() - 7);
    if (name.starts_with("features.")) name.erase(0, 9);
    for (char& ch : name)
        if (ch == '.' || ch == '/') ch = '_';
    return name;
}

std::string describe(const Weight& w, int64_t output_channel) {
    const int64_t in = w.shape[1];
    if (in == 3) return std::to_string(w.shape[0]) + " RGB kernels";
    if (in == 1) return std::to_string(w.shape[0]) + " grey kernels";
    return "output channel " + std::to_string(output_channel) + "'s " + std::to_string(in) + " input kernels, grey";
}

int run_visualize(const VisualizeOptions& o) {
    const SafetensorsFile file = open_checkpoint(o.checkpoint);
    std::unique_ptr<SafetensorsFile> other;
    if (!o.compare.empty()) other = std::make_unique<SafetensorsFile>(open_checkpoint(o.compare));
    std::error_code ec;
    std::filesystem::create_directories(o.out, ec);
    if (ec) throw std::runtime_error("cannot create output folder '" + o.out + "': " + ec.message());

    auto draw = [&](const std::string& path, const float* values, const Weight& w, const std::string& source) {
        const int64_t factor = write_weight_grid(path, make_grid(weight_tiles(values, w.shape, o.output_channel)));
        std::printf("  %s  (%s; each pixel drawn %ldx%ld)\n", path.c_str(), source.c_str(), long(factor), long(factor));
    };
    for (const auto& layer : o.layers) {
        const Weight w = read_weight(file, layer);
        if (w.shape[1] != 1 && w.shape[1] != 3 && o.output_channel >= w.shape[0])
            throw std::runtime_error("--output-channel " + std::to_string(o.output_channel) + " is out of range: '" +
                                     w.name + "' has " + std::to_string(w.shape[0]) + " output channels");
        const std::string stem = o.out + "/" + file_stem(w.name);
        std::optional<Weight> v;
        if (other) {
            v = read_weight(*other, w.name);
            if (v->shape != w.shape)
                throw std::runtime_error("'" + w.name + "' is " + shape_text(w.shape) + " in '" + o.checkpoint + "' but " +
                                         shape_text(v->shape) + " in '" + o.compare + "': not the same architecture");
        }
        std::printf("%s %s: %s\n", w.name.c_str(), shape_text(w.shape).c_str(), describe(w, o.output_channel).c_str());
        draw(stem + ".png", w.values.data(), w, o.checkpoint);
        if (!v) continue;
        const std::vector<float> diff = abs_difference(w.values.data(), v->values.data(), int64_t(w.values.size()));
        draw(stem + "_compare.png", v->values.data(), w, o.compare);
        draw(stem + "_diff.png", diff.data(), w, "|difference|, normalised on its own");
    }
    return 0;
}
}  // namespace

Command add_visualize_command(CLI::App& app) {
    auto o = std::make_shared<VisualizeOptions>();
    auto* cmd = app.add_subcommand(
        "visualize",
        "draw a checkpoint's convolution kernels as torchvision.utils.make_grid(normalize=True, nrow=8, padding=2) "
        "lays them out, as PNG pictures: a layer with 3 input channels as RGB kernels, one with 1 as grey kernels, "
        "any other as one output channel's kernels over its inputs. Reads only the named weights, so any "
        "architecture works");
    cmd->add_option("--checkpoint", o->checkpoint, "checkpoint: safetensors (e.g. RUN_DIR/last.safetensors) or a PyTorch .pth")
        ->required()
        ->check(CLI::ExistingFile);
    cmd->add_option("--compare", o->compare,
                    "a second checkpoint of the same architecture (e.g. RUN_DIR/init.safetensors): also draws its "
                    "kernels (<layer>_compare.png) and the absolute difference (<layer>_diff.png)")
        ->check(CLI::ExistingFile);
    cmd->add_option("--layer", o->layers,
                    "state_dict name of a conv layer, with or without .weight; repeat for several "
                    "(`densenet summary` lists the names)")
        ->capture_default_str()
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);  // main() makes TakeLast the default
    cmd->add_option("--output-channel", o->output_channel,
                    "for layers whose input is not 1 or 3 channels: which output channel's kernels to draw")
        ->capture_default_str()
        ->check(CLI::NonNegativeNumber);
    cmd->add_option("--out", o->out, "folder for the pictures (created if missing); files are <layer>.png")->required();
    return {cmd, [o] { return run_visualize(*o); }};
}

}  // namespace dn
