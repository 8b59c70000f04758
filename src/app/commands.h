// defines: Command, and one add_*_command per subcommand of the densenet program
#pragma once
#include <CLI/CLI.hpp>

#include <functional>

namespace dn {

// A subcommand: its parser, and what runs when the user picks it (returns the exit code).
// Each add_*_command lives in app/<name>.cpp with its options, and throws std::exception with a
// one-line message on bad input; main() prints it and exits non-zero.
struct Command {
    CLI::App* parser = nullptr;
    std::function<int()> run;
};

Command add_train_command(CLI::App& app);
Command add_eval_command(CLI::App& app);
Command add_predict_command(CLI::App& app);
Command add_summary_command(CLI::App& app);
Command add_complexity_command(CLI::App& app);
Command add_visualize_command(CLI::App& app);
Command add_bench_command(CLI::App& app);
Command add_import_command(CLI::App& app);
Command add_export_command(CLI::App& app);

}  // namespace dn
