#include "app/commands.h"

#include "app/layer_table.h"
#include "model/parameters.h"
#include "model/torch_repr.h"

#include <cstdio>

#include <memory>
#include <string>

namespace dn {

namespace {
struct SummaryOptions {
    std::string arch = "densenet121";
    int64_t num_classes = 1000;
    int64_t input_size = 224;
};

int run_summary(const SummaryOptions& o) {
    const DenseNetConfig cfg = densenet_preset(o.arch, o.num_classes);
    // Checked before anything is printed, so that bad input prints only the error.
    const auto layers = describe_layers(cfg, 1, o.input_size, o.input_size);
    std::printf("%s", torch_repr(cfg).c_str());

    Parameters params(cfg);
    std::printf("\nstate_dict: parameters and buffers, in torchvision's order\n");
    for (const auto& e : params.entries()) {
        std::string shape;
        for (size_t i = 0; i < e.shape.size(); ++i) shape += (i ? ", " : "") + std::to_string(e.shape[i]);
        std::printf("  %-60s [%s]\n", e.name.c_str(), shape.c_str());
    }
    std::printf("Total number of parameters: %ld\n", long(params.count()));

    std::printf("\nPer layer, for one %ldx%ldx%ld image (MACs: convolutions and the classifier)\n",
                long(cfg.in_channels), long(o.input_size), long(o.input_size));
    print_layer_table(layers, false);
    return 0;
}
}  // namespace

Command add_summary_command(CLI::App& app) {
    auto o = std::make_shared<SummaryOptions>();
    auto* cmd = app.add_subcommand(
        "summary", "print a model as PyTorch's print(net) does, its state_dict names and shapes, and a per-layer table");
    cmd->add_option("--arch", o->arch, "densenet121, densenet161, densenet169 or densenet201")->capture_default_str();
    cmd->add_option("--num-classes", o->num_classes, "classifier outputs")->capture_default_str()->check(CLI::PositiveNumber);
    cmd->add_option("--input-size", o->input_size, "height and width of the input, for the per-layer table")
        ->capture_default_str();
    return {cmd, [o] { return run_summary(*o); }};
}

}  // namespace dn
