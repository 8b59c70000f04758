#include "app/commands.h"

#include "model/parameters.h"

#include <cstdio>

#include <memory>
#include <string>

namespace dn {

namespace {
struct SummaryOptions {
    std::string arch = "densenet121";
    int64_t num_classes = 1000;
};

int run_summary(const SummaryOptions& o) {
    Parameters params(densenet_preset(o.arch, o.num_classes));
    std::printf("%s, %ld classes: parameters and buffers in torchvision's state_dict order\n", o.arch.c_str(),
                long(o.num_classes));
    for (const auto& e : params.entries()) {
        std::string shape;
        for (size_t i = 0; i < e.shape.size(); ++i) shape += (i ? ", " : "") + std::to_string(e.shape[i]);
        std::printf("  %-60s [%s]\n", e.name.c_str(), shape.c_str());
    }
    std::printf("Total number of parameters: %ld\n", long(params.count()));
    return 0;
}
}  // namespace

Command add_summary_command(CLI::App& app) {
    auto o = std::make_shared<SummaryOptions>();
    auto* cmd = app.add_subcommand("summary", "print a model's parameters, with torchvision's names, and their count");
    cmd->add_option("--arch", o->arch, "densenet121, densenet161, densenet169 or densenet201")->capture_default_str();
    cmd->add_option("--num-classes", o->num_classes, "classifier outputs")->capture_default_str()->check(CLI::PositiveNumber);
    return {cmd, [o] { return run_summary(*o); }};
}

}  // namespace dn
