// Checkpoints: torchvision's names and dtypes, strict loading with clear errors, atomic writes,
// and a file written here that PyTorch loads (the check itself is tests/python/check_checkpoint.py).
#include "io/safetensors.h"
#include "model/checkpoint.h"
#include "model/densenet.h"
#include "model/init.h"
#include "train/optimizer.h"
#include "test_util.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

namespace dn {
namespace {

namespace fs = std::filesystem;

fs::path scratch_dir() {
    fs::path dir = fs::path(test::reference_dir()).parent_path() / "checkpoint_test";
    fs::create_directories(dir);
    return dir;
}

DenseNetConfig small_config(int64_t classes) {
    DenseNetConfig cfg;
    cfg.arch = "custom";
    cfg.growth_rate = 12, cfg.block_config = {2, 2}, cfg.num_init_features = 16, cfg.num_classes = classes;
    return cfg;
}

std::string expect_error(const std::function<void()>& f) {
    try {
        f();
    } catch (const std::exception& e) {
        return e.what();
    }
    ADD_FAILURE() << "no error";
    return "";
}

TEST(Checkpoint, SameSeedSameWeightsAndRoundTrip) {
    Parameters a(small_config(10)), b(small_config(10));
    init_parameters(a, 5);
    init_parameters(b, 5);
    EXPECT_EQ(std::vector<float>(a.values(), a.values() + a.count()), std::vector<float>(b.values(), b.values() + b.count()));
    init_parameters(b, 6);
    EXPECT_NE(a.values()[0], b.values()[0]);

    const std::string path = scratch_dir() / "roundtrip.safetensors";
    save_checkpoint(a, path, {{"arch", "custom"}});
    for (const auto& f : fs::directory_iterator(fs::path(path).parent_path()))
        EXPECT_EQ(f.path().string().find(".tmp"), std::string::npos) << f.path();  // no temporary file left
    auto meta = load_checkpoint(b, path);
    EXPECT_EQ(meta.at("arch"), "custom");
    EXPECT_EQ(std::vector<float>(a.values(), a.values() + a.count()), std::vector<float>(b.values(), b.values() + b.count()));
    SafetensorsFile file(path);
    EXPECT_EQ(file.tensors().at("features.norm0.num_batches_tracked").dtype, "I64");
    EXPECT_EQ(file.tensors().at("features.conv0.weight").shape, (std::vector<int64_t>{16, 3, 7, 7}));
}

TEST(Checkpoint, ClearErrorsForWrongOrDamagedFiles) {
    Parameters params(small_config(10));
    init_parameters(params, 1);
    const fs::path dir = scratch_dir();
    const std::string good = dir / "good.safetensors";
    save_checkpoint(params, good);

    Parameters other_classes(small_config(7));
    EXPECT_NE(expect_error([&] { load_checkpoint(other_classes, good); }).find("classifier.weight' has shape [10, "),
              std::string::npos);
    Parameters densenet121(densenet_preset("densenet121", 10));
    EXPECT_NE(expect_error([&] { load_checkpoint(densenet121, good); }).find("does not fit densenet121"), std::string::npos);

    std::ifstream in(good, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), {});
    auto write = [&](const std::string& name, const std::string& content) {
        std::ofstream(dir / name, std::ios::binary) << content;
        return (dir / name).string();
    };
    std::string truncated = write("truncated.safetensors", bytes.substr(0, bytes.size() / 2));
    EXPECT_NE(expect_error([&] { load_checkpoint(params, truncated); }).find("truncated"), std::string::npos);
    std::string garbage = bytes;
    garbage[10] = '\x01';
    std::string corrupt = write("corrupt.safetensors", garbage);
    EXPECT_NE(expect_error([&] { load_checkpoint(params, corrupt); }).find("not a valid safetensors"), std::string::npos);
    EXPECT_NE(expect_error([&] { load_checkpoint(params, (dir / "absent.safetensors").string()); }).find("cannot open"),
              std::string::npos);

    // A failed load leaves the parameters as they were.
    std::vector<float> before(params.values(), params.values() + params.count());
    EXPECT_ANY_THROW(load_checkpoint(params, truncated));
    EXPECT_EQ(before, std::vector<float>(params.values(), params.values() + params.count()));
}

TEST(Checkpoint, OptimizerStateResumesExactly) {
    // Two steps, save, two more == four steps straight, on one set of inputs.
    DnnlContext ctx;
    DenseNetConfig cfg = small_config(10);
    const RunShape shape{4, 32, 32};
    std::vector<float> x(4 * 3 * 32 * 32);
    std::mt19937 rng(3);
    std::uniform_real_distribution<float> u(0.0f, 1.0f);
    for (auto& v : x) v = u(rng);
    std::vector<int32_t> y{1, 2, 3, 4};
    auto run = [&](Parameters& p, Adam& adam, DenseNet& net, int steps) {
        for (int s = 0; s < steps; ++s) {
            net.forward(x.data(), y.data(), Mode::train);
            net.backward();
            adam.step(p.values(), p.grads());
            net.load_weights();
        }
    };
    Parameters straight(cfg);
    init_parameters(straight, 9);
    Adam adam_straight(straight.count(), {});
    DenseNet net_straight(ctx, straight, shape, Pass::training, Intermediates::recompute);
    run(straight, adam_straight, net_straight, 4);

    Parameters first(cfg);
    init_parameters(first, 9);
    Adam adam_first(first.count(), {});
    DenseNet net_first(ctx, first, shape, Pass::training, Intermediates::recompute);
    run(first, adam_first, net_first, 2);
    const fs::path dir = scratch_dir();
    save_checkpoint(first, dir / "resume.safetensors");
    adam_first.save(first, dir / "resume.optim.safetensors");

    Parameters resumed(cfg);
    load_checkpoint(resumed, dir / "resume.safetensors");
    Adam adam_resumed(resumed.count(), {});
    adam_resumed.load(resumed, dir / "resume.optim.safetensors");
    EXPECT_EQ(adam_resumed.steps(), 2);
    DenseNet net_resumed(ctx, resumed, shape, Pass::training, Intermediates::recompute);
    run(resumed, adam_resumed, net_resumed, 2);
    EXPECT_EQ(std::vector<float>(straight.values(), straight.values() + straight.count()),
              std::vector<float>(resumed.values(), resumed.values() + resumed.count()));
}

// Writes a checkpoint after a training step, an input and this engine's eval logits, for
// check_checkpoint.py to load into torchvision with strict=True and compare.
TEST(Checkpoint, WriteForPyTorch) {
    DnnlContext ctx;
    Parameters params(densenet_preset("densenet121", 10));
    init_parameters(params, 11);
    const RunShape shape{2, 32, 32};
    DenseNet net(ctx, params, shape, Pass::training, Intermediates::recompute);
    std::vector<float> x(2 * 3 * 32 * 32);
    std::mt19937 rng(4);
    std::uniform_real_distribution<float> u(0.0f, 1.0f);
    for (auto& v : x) v = u(rng);
    std::vector<int32_t> y{3, 7};
    net.forward(x.data(), y.data(), Mode::train);  // moves the running statistics and num_batches_tracked
    net.forward(x.data(), y.data(), Mode::eval);
    const fs::path dir = scratch_dir();
    save_checkpoint(params, dir / "for_pytorch.safetensors", {{"arch", "densenet121"}});
    std::vector<float> logits(net.logits(), net.logits() + 20);
    write_safetensors(dir / "for_pytorch_expected.safetensors",
                      {{"input", "F32", {2, 3, 32, 32}, x.data(), x.size() * 4},
                       {"logits", "F32", {2, 10}, logits.data(), logits.size() * 4}});
}

}  // namespace
}  // namespace dn
