// The densenet program: one binary, one subcommand per job.
#include "app/commands.h"
#include "app/version.h"

#include <cstdio>
#include <exception>
#include <vector>

int main(int argc, char** argv) {
    CLI::App app{"densenet.cpp: train, inspect and explain DenseNets, numerically as PyTorch/torchvision"};
    app.require_subcommand(1);
    app.set_version_flag("--version", dn::version_text);  // a callback: oneDNN is asked only when needed
    // A repeated option takes its last value, as in most command lines (scripts append overrides).
    app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
    const std::vector<dn::Command> commands{
        dn::add_train_command(app),
        dn::add_eval_command(app),
        dn::add_predict_command(app),
        dn::add_summary_command(app),
        dn::add_complexity_command(app),
        dn::add_visualize_command(app),
        dn::add_bench_command(app),
        dn::add_import_command(app),
        dn::add_export_command(app),
    };
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    }
    try {
        for (const auto& command : commands)
            if (command.parser->parsed()) return command.run();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
    return 0;
}
