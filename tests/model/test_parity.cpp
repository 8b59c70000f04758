// Parity with PyTorch: torchvision's DenseNets against this engine, tensor by tensor.
// The fixtures come from tests/python/make_reference.py, which ctest runs first.
#include "io/safetensors.h"
#include "model/checkpoint.h"
#include "model/densenet.h"
#include "train/optimizer.h"
#include "model/float32_bar.h"
#include "model/reference_case.h"
#include "test_util.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>
#include <vector>

namespace dn {
namespace {

constexpr double kTolerance = 1e-4;  // relative error per tensor, fp32
constexpr int kSteps = 5;

struct Case {
    std::string name;
    Intermediates intermediates;
};

std::string case_label(const testing::TestParamInfo<Case>& info) {
    return info.param.name + (info.param.intermediates == Intermediates::keep ? "_keep" : "_recompute");
}

class Parity : public testing::TestWithParam<Case> {
protected:
    void SetUp() override {
        dir_ = test::reference_dir() + "/" + GetParam().name;
        expected_ = std::make_unique<SafetensorsFile>(dir_ + "/expected.safetensors");
        auto meta = nlohmann::json::parse(expected_->metadata().at("case"));
        cfg_ = test::config_of(meta);
        shape_ = {meta["batch"], meta["size"], meta["size"]};
        params_ = std::make_unique<Parameters>(cfg_);
        load_checkpoint(*params_, dir_ + "/init.safetensors");
        net_ = std::make_unique<DenseNet>(ctx_, *params_, shape_, Pass::training, GetParam().intermediates);
        input_ = floats("input");
        labels_ = test::labels_of(*expected_);
        eval_only_ = meta.value("eval_only", false);
    }

    // A case that PyTorch only evaluated (make_reference.py) has no training to compare.
    bool skip_training() const { return eval_only_; }

    std::vector<float> floats(const std::string& name) const { return test::floats_of(*expected_, name); }

    test::Float32Runs float32_runs(const std::string& name) const { return test::float32_runs(*expected_, name); }

    // Checks `actual` against PyTorch's exact (float64) result. The bar is `tol`, or twice the
    // distance of PyTorch's float32 results from the exact one where that is larger: no test can
    // ask float32 for more than the conditioning of the computation allows, and a float32 result
    // that rounds differently from PyTorch's (oneDNN's Winograd kernels do) may land anywhere
    // within it.
    void expect_close(const std::string& what, const float* actual, const std::string& name, double tol) const {
        std::vector<float> exact = floats("f64." + name);
        const int64_t n = int64_t(exact.size());
        double err = test::relative_error(actual, exact.data(), n);
        double torch_err = test::float32_error(float32_runs(name), exact);
        double bar = std::max(tol, 2.0 * torch_err);
        EXPECT_LE(err, bar) << what << ": " << name << " relative error " << err << " (PyTorch float32: " << torch_err
                            << "; first value " << actual[0] << " vs " << exact[0] << ")";
        worst_ = std::max(worst_, err);
        worst_torch_ = std::max(worst_torch_, torch_err);
    }

    void restart_from_init() {
        load_checkpoint(*params_, dir_ + "/init.safetensors");
        net_->load_weights();
    }

    template <class Optimizer>
    std::vector<float> train(Optimizer& opt) {
        std::vector<float> losses;
        for (int s = 0; s < kSteps; ++s) {
            losses.push_back(net_->forward(input_.data(), labels_.data(), Mode::train));
            net_->backward();
            opt.step(params_->values(), params_->grads());
            net_->load_weights();
        }
        return losses;
    }

    void report() const {
        std::printf("[ %s ] worst relative error against PyTorch float64: %.3g (PyTorch float32's, plain or with rounding noise: %.3g)\n",
                    GetParam().name.c_str(), worst_, worst_torch_);
    }

    std::string dir_;
    std::unique_ptr<SafetensorsFile> expected_;
    DenseNetConfig cfg_;
    RunShape shape_;
    DnnlContext ctx_;
    std::unique_ptr<Parameters> params_;
    std::unique_ptr<DenseNet> net_;
    std::vector<float> input_;
    std::vector<int32_t> labels_;
    bool eval_only_ = false;
    mutable double worst_ = 0.0, worst_torch_ = 0.0;
};

TEST_P(Parity, EvalLogitsAndLoss) {
    float loss = net_->forward(input_.data(), labels_.data(), Mode::eval);
    expect_close("eval", net_->logits(), "eval.logits", kTolerance);
    expect_close("eval", &loss, "eval.loss", kTolerance);
    report();
}

// An inference network folds each norm that follows a convolution into it (ConvEpilogue): the
// same logits, rounded differently.
TEST_P(Parity, InferenceNetworkEvalLogitsAndLoss) {
    DenseNet inference(ctx_, *params_, shape_, Pass::inference, Intermediates::recompute);
    float loss = inference.forward(input_.data(), labels_.data(), Mode::eval);
    expect_close("inference", inference.logits(), "eval.logits", kTolerance);
    expect_close("inference", &loss, "eval.loss", kTolerance);
    report();
}

TEST_P(Parity, TrainLogitsLossGradientsAndRunningStats) {
    if (skip_training()) GTEST_SKIP() << "an evaluation-only case";
    float loss = net_->forward(input_.data(), labels_.data(), Mode::train);
    expect_close("train", net_->logits(), "train.logits", kTolerance);
    expect_close("train", &loss, "train.loss", kTolerance);
    net_->backward();
    int checked = 0;
    for (const auto& e : params_->entries()) {
        if (e.role == TensorRole::parameter) {
            expect_close("gradient", params_->grads() + e.offset, "grad." + e.name, kTolerance);
            ++checked;
        } else if (e.role == TensorRole::running_stat) {
            expect_close("running statistic", static_cast<const float*>(params_->data(e)), "after_forward." + e.name,
                         kTolerance);
        } else {
            const auto& t = expected_->tensors().at("after_forward." + e.name);
            int64_t want;
            std::memcpy(&want, t.data, 8);
            EXPECT_EQ(*static_cast<const int64_t*>(params_->data(e)), want) << e.name;
        }
    }
    EXPECT_GT(checked, 0);
    report();
}

// SGD's update is linear in the gradient, so the weights after 5 steps are fully determined by the
// math: every tensor is compared, and so is its displacement from the initial weights (a far
// stricter check, since the displacement is small against the weights).
TEST_P(Parity, FiveSgdMomentumSteps) {
    if (skip_training()) GTEST_SKIP() << "an evaluation-only case";
    SgdOptions o;
    o.lr = 0.01, o.momentum = 0.9;
    Sgd sgd(params_->count(), o);
    restart_from_init();
    std::vector<float> init(params_->values(), params_->values() + params_->count());
    std::vector<float> losses = train(sgd);
    expect_close("SGD losses", losses.data(), "sgd.losses", kTolerance);
    for (const auto& e : params_->entries()) {
        if (e.role != TensorRole::parameter) continue;
        const float* w = params_->values() + e.offset;
        expect_close("SGD weights", w, "sgd." + e.name, kTolerance);
        std::vector<float> exact = floats("f64.sgd." + e.name);
        auto displacement = [&](const std::vector<float>& weights) {
            std::vector<float> moved;
            for (int64_t i = 0; i < e.numel(); ++i) moved.push_back(weights[size_t(i)] - init[size_t(e.offset + i)]);
            return moved;
        };
        std::vector<float> moved = displacement(std::vector<float>(w, w + e.numel())), exact_moved = displacement(exact);
        double err = test::relative_error(moved.data(), exact_moved.data(), e.numel());
        double torch_err = test::float32_error(float32_runs("sgd." + e.name), exact_moved, displacement);
        EXPECT_LE(err, std::max(1e-3, 2.0 * torch_err)) << "SGD displacement of " << e.name;
    }
    report();
}

// Adam moves every weight by about lr per step whatever its gradient's size, so where a gradient
// is at rounding-noise level its update's sign is noise too (two PyTorch runs disagree there).
// Elements whose exact first gradient is at least 1e-3 of their tensor's RMS are determined by the
// math and compared strictly, with expect_close's bar: weights to 1e-4, displacement from the
// initial weights to 1e-3. For the rest, Adam's own bound is checked: no weight may be further
// than 2 * lr per step from PyTorch's. At least 90% of all weights must be in the strict set, so
// the test cannot pass vacuously (measured: 91.7% for densenet121 at 32x32, where many block-4
// channels are dead at batch 4; 99.8% at 64x64; 99.9% for the custom network). The noise elements
// move the eval loss after 5 steps too, so that is held to 1e-3 (measured: 3.9e-4 at 64x64).
TEST_P(Parity, FiveAdamSteps) {
    if (skip_training()) GTEST_SKIP() << "an evaluation-only case";
    AdamOptions o;
    o.lr = 1e-4;
    Adam adam(params_->count(), o);
    restart_from_init();
    std::vector<float> init(params_->values(), params_->values() + params_->count());
    std::vector<float> losses = train(adam);
    expect_close("Adam losses", losses.data(), "adam.losses", kTolerance);
    int64_t strict_count = 0, total = 0;
    for (const auto& e : params_->entries()) {
        if (e.role != TensorRole::parameter) continue;
        const float* w = params_->values() + e.offset;
        std::vector<float> exact = floats("f64.adam." + e.name);
        const test::Float32Runs torch32 = float32_runs("adam." + e.name);
        const std::vector<bool> strict = test::adam_strict_mask(floats("f64.grad." + e.name));
        for (int64_t i = 0; i < e.numel(); ++i) {
            if (strict[size_t(i)]) continue;
            EXPECT_LE(std::abs(w[i] - torch32.plain[size_t(i)]), 2 * o.lr * kSteps * 1.01) << e.name << "[" << i << "]";
        }
        // The kept elements of a tensor of weights, as weights and as displacements.
        auto kept_weights = [&](const std::vector<float>& weights) { return test::kept(weights, strict); };
        auto kept_moved = [&](const std::vector<float>& weights) {
            return test::kept(weights, strict, init.data() + e.offset);
        };
        const std::vector<float> ours(w, w + e.numel());
        std::vector<float> got = kept_weights(ours), want = kept_weights(exact);
        std::vector<float> got_moved = kept_moved(ours), want_moved = kept_moved(exact);
        const int64_t kept = int64_t(got.size());
        strict_count += kept, total += e.numel();
        if (kept == 0) continue;
        double err_w = test::relative_error(got.data(), want.data(), kept);
        double torch_w = test::float32_error(torch32, want, kept_weights);
        double err_moved = test::relative_error(got_moved.data(), want_moved.data(), kept);
        double torch_moved_err = test::float32_error(torch32, want_moved, kept_moved);
        EXPECT_LE(err_w, std::max(kTolerance, 2.0 * torch_w)) << "Adam weights of " << e.name;
        EXPECT_LE(err_moved, std::max(1e-3, 2.0 * torch_moved_err))
            << "Adam displacement of " << e.name << " (PyTorch float32: " << torch_moved_err << ")";
        worst_ = std::max(worst_, err_w);
        if (std::getenv("PARITY_VERBOSE"))
            std::printf("  %-60s weights %.3g (torch %.3g) displacement %.3g (torch %.3g)\n", e.name.c_str(), err_w,
                        torch_w, err_moved, torch_moved_err);
    }
    EXPECT_GE(double(strict_count) / double(total), 0.90);
    float eval_loss = net_->forward(input_.data(), labels_.data(), Mode::eval);
    expect_close("Adam eval loss", &eval_loss, "adam.eval_loss", 1e-3);
    std::printf("[ %s ] %.4f%% of weights compared strictly\n", GetParam().name.c_str(), 100.0 * double(strict_count) / double(total));
    report();
}

INSTANTIATE_TEST_SUITE_P(TorchVision, Parity,
                         testing::Values(Case{"densenet121", Intermediates::recompute},
                                         Case{"densenet121", Intermediates::keep},
                                         Case{"densenet121_64", Intermediates::recompute},
                                         Case{"custom_small", Intermediates::recompute},
                                         Case{"custom_small", Intermediates::keep},
                                         Case{"custom_28", Intermediates::recompute},
                                         Case{"custom_28", Intermediates::keep},
                                         Case{"densenet121_224", Intermediates::recompute}),
                         case_label);

}  // namespace
}  // namespace dn
