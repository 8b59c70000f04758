// Parity with PyTorch on the GPU: the GPU DenseNet against the same fixtures as the CPU engine's
// parity test (tests/python/make_reference.py: torchvision's networks, their inputs, and PyTorch's
// results in float32 and float64), tensor by tensor, with TF32 off: the CPU parity test's checks
// and bars (tests/model/test_parity.cpp), on the GPU. A plain program (no
// GoogleTest), so that it builds on a GPU machine: gpu_check.sh runs it there.
//
// The bar, per tensor, is that of the CPU parity test (model/float32_bar.h): a relative error of
// 1e-4 from the exact (float64) result, or twice PyTorch float32's own error where that is larger,
// PyTorch's error being the larger of its plain run's and of its runs with rounding-level noise on
// every convolution. cuDNN's algorithms are the heuristics' first choice, as PyTorch's with
// cudnn.benchmark off, and some of them sum in an order that changes from run to run
// (backward-weights with atomics): such orders move a result only as the noisy runs' rounding
// does, so the bar holds them as it holds oneDNN's Winograd on the CPU.
//
// bf16 (check_case_bf16) is held to PyTorch's CPU autocast fixtures at the CPU engine's bf16 bar.
//
// Usage: test_cuda_parity REFERENCE_DIR. Exit status: 0 passed, 1 failed, 77 no GPU.
#include "cuda/context.h"
#include "cuda/cuda_check.h"
#include "cuda/densenet.h"
#include "cuda/device.h"
#include "cuda/host_classifier.h"
#include "cuda/step_engine.h"
#include "io/safetensors.h"
#include "model/checkpoint.h"
#include "model/float32_bar.h"
#include "model/reference_config.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace dn::cuda {
namespace {

int failures = 0;
double worst = 0.0;

using test::float32_error;
using test::float32_runs;
using test::Float32Runs;

double relative_error(const float* a, const float* b, size_t n) { return test::relative_error(a, b, int64_t(n)); }

std::vector<float> floats(const SafetensorsFile& f, const std::string& name) { return test::fixture_floats(f, name); }

template <class T>
std::vector<T> download(const T* device, size_t n, const Context& ctx) {
    std::vector<T> host(n);
    CUDA_CHECK(cudaMemcpyAsync(host.data(), device, n * sizeof(T), cudaMemcpyDeviceToHost, ctx.stream()));
    ctx.synchronize();
    return host;
}

void expect_close(const SafetensorsFile& expected, const std::string& what, const float* actual, const std::string& name,
                  double tol = 1e-4) {
    const std::vector<float> exact = floats(expected, "f64." + name);
    const double err = relative_error(actual, exact.data(), exact.size());
    const double torch_err = float32_error(float32_runs(expected, name), exact);
    const double bar = std::max(tol, 2.0 * torch_err);
    worst = std::max(worst, err);
    if (err <= bar) return;
    ++failures;
    std::printf("FAILED %s %s: relative error %.3e, bar %.3e (PyTorch float32: %.3e)\n", what.c_str(), name.c_str(), err,
                bar, torch_err);
}

void fail_check(const std::string& what) {
    ++failures;
    std::printf("FAILED %s\n", what.c_str());
}

// Adam's weights after 5 steps, by the CPU parity test's rule (tests/model/test_parity.cpp): an
// element whose exact first gradient is under 1e-3 of its tensor's RMS moves by +-lr per step in a
// direction that is rounding noise, so it is held only to Adam's bound (2 lr per step from
// PyTorch's); the rest are held to the usual bar, as weights and as displacements from the start.
void check_adam_weights(const SafetensorsFile& expected, const Parameters& params, const std::vector<float>& init,
                        double lr, int steps) {
    int64_t strict_count = 0, total = 0;
    for (const auto& e : params.entries()) {
        if (e.role != TensorRole::parameter) continue;
        const float* w = params.values() + e.offset;
        const std::vector<float> exact = floats(expected, "f64.adam." + e.name);
        const Float32Runs torch32 = float32_runs(expected, "adam." + e.name);
        const std::vector<bool> strict = test::adam_strict_mask(floats(expected, "f64.grad." + e.name));
        for (size_t j = 0; j < strict.size(); ++j)
            if (!strict[j] && std::abs(w[j] - torch32.plain[j]) > 2 * lr * steps * 1.01)
                fail_check("Adam bound on " + e.name + "[" + std::to_string(j) + "]");
        // The strict elements of a tensor of weights, as weights and as displacements.
        auto kept_weights = [&](const std::vector<float>& weights) { return test::kept(weights, strict); };
        auto kept_moved = [&](const std::vector<float>& weights) {
            return test::kept(weights, strict, init.data() + e.offset);
        };
        const std::vector<float> ours(w, w + e.numel());
        const std::vector<float> got = kept_weights(ours), want = kept_weights(exact);
        const std::vector<float> got_moved = kept_moved(ours), want_moved = kept_moved(exact);
        strict_count += int64_t(got.size()), total += e.numel();
        if (got.empty()) continue;
        const double err_w = relative_error(got.data(), want.data(), got.size());
        const double torch_w = float32_error(torch32, want, kept_weights);
        const double err_moved = relative_error(got_moved.data(), want_moved.data(), got.size());
        const double torch_moved_err = float32_error(torch32, want_moved, kept_moved);
        worst = std::max(worst, err_w);
        if (err_w > std::max(1e-4, 2.0 * torch_w)) fail_check("Adam weights of " + e.name);
        if (err_moved > std::max(1e-3, 2.0 * torch_moved_err)) fail_check("Adam displacement of " + e.name);
    }
    if (double(strict_count) < 0.9 * double(total)) fail_check("fewer than 90% of the weights compared strictly");
}

// A fixture's batch: on the host, and copied to the device on the network's stream (which does
// not wait for the legacy default stream's copies).
struct FixtureBatch {
    std::vector<float> input;
    std::vector<int32_t> labels;
    DeviceBuffer images, device_labels;

    FixtureBatch(const SafetensorsFile& expected, const Context& ctx) : input(floats(expected, "input")) {
        const auto& label_tensor = expected.tensors().at("labels");
        labels.resize(label_tensor.bytes / 4);
        std::memcpy(labels.data(), label_tensor.data, label_tensor.bytes);
        images = DeviceBuffer(input.size() * sizeof(float));
        device_labels = DeviceBuffer(labels.size() * sizeof(int32_t));
        CUDA_CHECK(cudaMemcpyAsync(images.bytes(), input.data(), images.size(), cudaMemcpyHostToDevice, ctx.stream()));
        CUDA_CHECK(cudaMemcpyAsync(device_labels.bytes(), labels.data(), device_labels.size(), cudaMemcpyHostToDevice,
                                   ctx.stream()));
        ctx.synchronize();
    }
    const float* device_images() const { return images.floats(); }
    const int32_t* device_y() const { return reinterpret_cast<const int32_t*>(device_labels.bytes()); }
};

Parameters& with_checkpoint(Parameters& params, const std::string& path) {
    load_checkpoint(params, path);
    return params;
}

// A fixture case on the GPU: PyTorch's results, the initial weights on the device, the training
// network in `precision` (TF32 off), and the batch.
struct FixtureRun {
    std::string dir;
    SafetensorsFile expected;
    nlohmann::json meta;
    RunShape shape;
    Parameters params;
    Context ctx;
    DeviceParameters device;
    DenseNet net;
    FixtureBatch batch;

    FixtureRun(const std::string& case_dir, Precision precision)
        : dir(case_dir), expected(dir + "/expected.safetensors"),
          meta(nlohmann::json::parse(expected.metadata().at("case"))), shape{meta["batch"], meta["size"], meta["size"]},
          params(test::config_of(meta)), ctx(0, Tf32::off), device(with_checkpoint(params, dir + "/init.safetensors")),
          net(ctx, params, device.upload(ctx.stream()), shape, Pass::training, Intermediates::recompute, precision),
          batch(expected, ctx) {}

    size_t logit_count() const { return size_t(shape.batch * params.config().num_classes); }
};

// compare(what, actual, name): one tensor against the fixture's, at the precision's bar.
using Compare = std::function<void(const std::string& what, const float* actual, const std::string& name)>;

// What both precisions check: eval logits and loss, of the training network and of the inference
// network eval and predict run (over host memory); train logits and loss; every gradient (left in
// the host's params).
void check_passes(FixtureRun& r, Precision precision, const Compare& compare) {
    r.net.forward(r.batch.device_images(), r.batch.device_y(), StepMode::eval);
    float loss = r.net.loss();
    compare("eval", download(r.net.logits(), r.logit_count(), r.ctx).data(), "eval.logits");
    compare("eval", &loss, "eval.loss");
    {
        HostClassifier host(r.params, r.shape, precision, 0, Tf32::off);
        const float host_loss = host.forward(r.batch.input.data(), r.batch.labels.data(), Mode::eval);
        compare("inference network", host.logits(), "eval.logits");
        compare("inference network", &host_loss, "eval.loss");
    }
    r.net.forward(r.batch.device_images(), r.batch.device_y(), StepMode::train);
    loss = r.net.loss();
    compare("train", download(r.net.logits(), r.logit_count(), r.ctx).data(), "train.logits");
    compare("train", &loss, "train.loss");
    r.net.backward();
    r.device.download(r.ctx.stream());
    for (const auto& e : r.params.entries())
        if (e.role == TensorRole::parameter) compare("gradient", r.params.grads() + e.offset, "grad." + e.name);
}

// SGD's weights after 5 steps: every element, as weights and as displacements from the start
// (SGD is linear in the gradient: no noise elements, as the CPU parity test).
void check_sgd_weights(const SafetensorsFile& expected, const Parameters& params, const std::vector<float>& init) {
    for (const auto& e : params.entries()) {
        if (e.role != TensorRole::parameter) continue;
        const float* w = params.values() + e.offset;
        expect_close(expected, "SGD weights", w, "sgd." + e.name);
        auto displacement = [&](const std::vector<float>& weights) {
            std::vector<float> moved;
            for (int64_t j = 0; j < e.numel(); ++j) moved.push_back(weights[size_t(j)] - init[size_t(e.offset + j)]);
            return moved;
        };
        const std::vector<float> got = displacement(std::vector<float>(w, w + e.numel()));
        const std::vector<float> want = displacement(floats(expected, "f64.sgd." + e.name));
        const double err = relative_error(got.data(), want.data(), got.size());
        const double torch_err = float32_error(float32_runs(expected, "sgd." + e.name), want, displacement);
        if (err > std::max(1e-3, 2.0 * torch_err)) fail_check("SGD displacement of " + e.name);
    }
}

// The engine `densenet train --device cuda` runs (GpuStepEngine): the fixture's 5 steps of Adam
// (lr 1e-4) or SGD (lr 0.01, momentum 0.9) from the initial weights, host batches in, the
// optimizer stepping on the device through the run's ParameterUpdate, then to_host() as a
// checkpoint reads it, and its tester's eval loss; with the run's weight average on the device.
void check_engine_steps(const FixtureRun& r, const std::string& optimizer_name) {
    Parameters params(r.params.config());
    load_checkpoint(params, r.dir + "/init.safetensors");
    const std::vector<float> init(params.values(), params.values() + params.count());
    std::unique_ptr<Optimizer> optimizer;
    if (optimizer_name == "adam") optimizer = std::make_unique<Adam>(params.count(), AdamOptions{.lr = 1e-4});
    else optimizer = std::make_unique<Sgd>(params.count(), SgdOptions{.lr = 0.01, .momentum = 0.9});
    // The run's average of the weights (--ema-decay 0.9), blended on the device, against the
    // host's WeightAverage folding in the same weights after every step; tested there too.
    WeightAverage average(params.config(), 0.9), reference(params.config(), 0.9);
    ParameterUpdate update(*optimizer, {.average = &average});
    GpuStepEngine engine(params, update, {.shape = r.shape, .tested = TestedWeights::average}, 0, Tf32::off);
    std::vector<float> losses;
    for (int step = 1; step <= 5; ++step) {
        losses.push_back(engine.forward(r.batch.input.data(), r.batch.labels.data()));
        engine.backward_and_update();
        engine.to_host();
        reference.update(params);
    }
    const Parameters &got = average.averaged(), &want = reference.averaged();
    const double values_err = relative_error(got.values(), want.values(), size_t(got.count()));
    const double running_err = relative_error(got.running_stats(), want.running_stats(), size_t(got.running_count()));
    // Both round each product and the sum on their own (PyTorch's ops): the same bits.
    if (values_err != 0.0 || running_err != 0.0)
        fail_check(optimizer_name + ": the average on the device is off the host's by " + std::to_string(values_err) +
                   " (weights), " + std::to_string(running_err) + " (running statistics)");
    for (const auto& e : got.entries())
        if (e.role == TensorRole::batch_count &&
            *static_cast<const int64_t*>(got.data(e)) != *static_cast<const int64_t*>(want.data(e)))
            fail_check(optimizer_name + ": the average's " + e.name + " differs from the host's");
    if (optimizer->steps() != 5) fail_check(optimizer_name + ": the optimizer counted " + std::to_string(optimizer->steps()) + " steps");
    const std::string what = "engine " + optimizer_name;
    expect_close(r.expected, what, losses.data(), optimizer_name + ".losses");
    if (optimizer_name == "adam") check_adam_weights(r.expected, params, init, 1e-4, 5);
    else check_sgd_weights(r.expected, params, init);
    // The noise elements move the eval loss too: 1e-3, as on the CPU.
    const float eval_loss =
        engine.tester(TestedWeights::trained).forward(r.batch.input.data(), r.batch.labels.data(), Mode::eval);
    expect_close(r.expected, what, &eval_loss, optimizer_name + ".eval_loss", 1e-3);
}

void check_case(const std::string& dir) {
    FixtureRun r(dir, Precision::fp32);
    const SafetensorsFile& expected = r.expected;
    check_passes(r, Precision::fp32, [&](const std::string& what, const float* actual, const std::string& name) {
        expect_close(expected, what, actual, name);
    });
    for (const auto& e : r.params.entries())
        if (e.role == TensorRole::running_stat)
            expect_close(expected, "running statistic", static_cast<const float*>(r.params.data(e)),
                         "after_forward." + e.name);

    check_engine_steps(r, "adam");
    check_engine_steps(r, "sgd");
    std::printf("%s: %s, device memory %.1f MB\n", dir.c_str(), failures ? "FAILED" : "ok",
                double(r.net.device_bytes()) / 1e6);
}

// bf16 against PyTorch's CPU autocast, at the CPU engine's bf16 parity bar
// (tests/model/test_parity_bf16.cpp): each tensor's relative error from the exact result at most
// twice autocast's, or 1e-2 where autocast lands closer than that. The engine keeps activations in
// bf16 where autocast does, and gradients of the block buffers, the head and batch norm in f32.
void expect_close_bf16(const SafetensorsFile& expected, const std::string& what, const float* actual,
                       const std::string& name) {
    const std::vector<float> exact = floats(expected, "f64." + name), autocast = floats(expected, "bf16." + name);
    const double err = relative_error(actual, exact.data(), exact.size());
    const double autocast_err = relative_error(autocast.data(), exact.data(), exact.size());
    const double bar = std::max(1e-2, 2.0 * autocast_err);
    if (err <= bar) return;
    ++failures;
    std::printf("FAILED bf16 %s %s: relative error %.3e, bar %.3e (autocast: %.3e)\n", what.c_str(), name.c_str(), err,
                bar, autocast_err);
}

void check_case_bf16(const std::string& dir) {
    FixtureRun r(dir, Precision::bf16);
    if (!r.meta.value("autocast", false)) throw std::runtime_error(dir + " has no autocast reference");
    check_passes(r, Precision::bf16, [&](const std::string& what, const float* actual, const std::string& name) {
        expect_close_bf16(r.expected, what, actual, name);
    });
    std::printf("%s bf16: %s\n", dir.c_str(), failures ? "FAILED" : "ok");
}

}  // namespace
}  // namespace dn::cuda

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: test_cuda_parity REFERENCE_DIR\n");
        return 2;
    }
    std::string why;
    if (dn::cuda::visible_devices(&why) == 0) {
        std::printf("skipped: no CUDA device is visible (%s)\n", why.c_str());
        return 77;
    }
    // A case that throws (a CUDA or cuDNN error) is one failure; the others still run.
    auto run = [&](void (*check)(const std::string&), const char* name) {
        try {
            check(std::string(argv[1]) + "/" + name);
        } catch (const std::exception& e) {
            ++dn::cuda::failures;
            std::printf("FAILED %s: %s\n", name, e.what());
        }
    };
    for (const char* name : {"densenet121", "densenet121_64", "custom_small"}) run(dn::cuda::check_case, name);
    for (const char* name : {"densenet121_64", "custom_small", "custom_28"}) run(dn::cuda::check_case_bf16, name);
    std::printf("largest relative error from PyTorch's float64: %.3e; %d tensors over their bar\n", dn::cuda::worst,
                dn::cuda::failures);
    return dn::cuda::failures ? 1 : 0;
}
