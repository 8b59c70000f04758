// The densenet program: one binary, one subcommand per job.
#include "app/commands.h"

#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>

int main(int argc, char** argv) {
    CLI::App app{"densenet.cpp: train, inspect and explain DenseNets, numerically as PyTorch/torchvision"};
    app.require_subcommand(1);

    dn::SummaryOptions summary;
    auto* s = app.add_subcommand("summary", "print a model's parameters, with torchvision's names, and their count");
    s->add_option("--arch", summary.arch, "densenet121, densenet161, densenet169 or densenet201")->capture_default_str();
    s->add_option("--num-classes", summary.num_classes, "classifier outputs")->capture_default_str()->check(CLI::PositiveNumber);

    dn::TrainOptions train;
    auto* t = app.add_subcommand("train", "train on Fashion-MNIST or MNIST (IDX files) with Adam and NLL(log_softmax)");
    t->add_option("--arch", train.arch, "model architecture")->capture_default_str();
    t->add_option("--dataset", train.dataset, "fashion-mnist or mnist")->capture_default_str();
    t->add_option("--data-dir", train.data_dir, "folder with the IDX files")->capture_default_str();
    t->add_option("--out", train.out, "run folder for checkpoints and metrics")->capture_default_str();
    t->add_option("--input-size", train.input_size, "images are padded to this size")->capture_default_str();
    t->add_option("--batch-size", train.batch_size, "images per step")->capture_default_str();
    t->add_option("--epochs", train.epochs, "passes over the training images")->capture_default_str();
    t->add_option("--lr", train.lr, "Adam learning rate")->capture_default_str();
    t->add_option("--limit-train", train.limit_train, "use only the first N training images (0: all)")->capture_default_str();
    t->add_option("--limit-test", train.limit_test, "use only the first N test images (0: all)")->capture_default_str();
    t->add_option("--seed", train.seed, "initialisation and shuffling seed")->capture_default_str();
    t->add_option("--memory", train.memory, "recompute (memory-efficient) or keep the BN-ReLU and bottleneck outputs")
        ->capture_default_str()
        ->check(CLI::IsMember({"recompute", "keep"}));

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    }
    try {
        if (*s) return dn::run_summary(summary);
        if (*t) return dn::run_train(train);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
    return 0;
}
