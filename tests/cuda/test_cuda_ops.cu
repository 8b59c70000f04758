// The GPU engine's ops against exact references: each op runs on the GPU and is compared, per
// output tensor, with the same computation in double on the host, as ggml's test-backend-ops
// compares every back end with a reference. A plain program (no GoogleTest), so that it builds on
// a GPU machine that has only CUDA, cuDNN and CMake: gpu_check.sh builds and runs it there.
//
// Exit status: 0 all passed, 1 a failure, 77 no GPU visible (CTest reports the test as skipped).
#include "cuda/optimizer_step.h"
#include "cuda/batch_norm_relu.h"
#include "cuda/channel_copy.h"
#include "cuda/conv.h"
#include "cuda/cuda_check.h"
#include "cuda/device.h"
#include "cuda/global_pool.h"
#include "cuda/linear.h"
#include "cuda/loss.h"
#include "cuda/pool.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace dn::cuda {
namespace {

int failures = 0;

// The largest difference from the reference, relative to the reference's largest magnitude.
void expect_close(const std::string& what, const std::vector<float>& got, const std::vector<double>& want, double bar) {
    double diff = 0.0, scale = 0.0;
    for (size_t i = 0; i < want.size(); ++i) {
        diff = std::max(diff, std::abs(double(got[i]) - want[i]));
        scale = std::max(scale, std::abs(want[i]));
    }
    const double error = diff / std::max(scale, 1e-30);
    const bool ok = error <= bar && std::isfinite(error);
    std::printf("%-52s relative error %.2e (bar %.0e) %s\n", what.c_str(), error, bar, ok ? "ok" : "FAILED");
    if (!ok) ++failures;
}

template <class T>
struct Device {
    T* ptr = nullptr;
    size_t n = 0;
    explicit Device(size_t count) : n(count) { CUDA_CHECK(cudaMalloc(&ptr, std::max<size_t>(count, 1) * sizeof(T))); }
    explicit Device(const std::vector<T>& host) : Device(host.size()) { upload(host); }
    ~Device() { cudaFree(ptr); }
    Device(const Device&) = delete;
    Device& operator=(const Device&) = delete;
    void upload(const std::vector<T>& host) {
        CUDA_CHECK(cudaMemcpy(ptr, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice));
    }
    std::vector<T> download() const {
        std::vector<T> host(n);
        CUDA_CHECK(cudaDeviceSynchronize());
        CUDA_CHECK(cudaMemcpy(host.data(), ptr, n * sizeof(T), cudaMemcpyDeviceToHost));
        return host;
    }
};

// Device values of either activation type, uploaded from and downloaded to floats (bf16 rounded
// to nearest even on the way up, as the engine's own conversions round).
struct Typed {
    DType type;
    Device<char> mem;
    Typed(DType t, size_t n) : type(t), mem(n * dtype_bytes(t)) {}
    Typed(DType t, const std::vector<float>& v) : Typed(t, v.size()) {
        std::vector<char> bytes(mem.n);
        for (size_t i = 0; i < v.size(); ++i) {
            if (type == DType::bf16) {
                const bf16 h = to_bf16(v[i]);
                std::memcpy(bytes.data() + 2 * i, &h, 2);
            } else {
                std::memcpy(bytes.data() + 4 * i, &v[i], 4);
            }
        }
        mem.upload(bytes);
    }
    void* ptr() const { return mem.ptr; }
    std::vector<float> download() const {
        const std::vector<char> bytes = mem.download();
        std::vector<float> v(mem.n / dtype_bytes(type));
        for (size_t i = 0; i < v.size(); ++i) {
            if (type == DType::bf16) {
                bf16 h;
                std::memcpy(&h, bytes.data() + 2 * i, 2);
                v[i] = to_float(h);
            } else {
                std::memcpy(&v[i], bytes.data() + 4 * i, 4);
            }
        }
        return v;
    }
};

// v with every value rounded to `type` (bf16 inputs a reference must see as the GPU does).
std::vector<float> rounded_to(DType type, std::vector<float> v) {
    if (type == DType::bf16)
        for (float& x : v) x = to_float(to_bf16(x));
    return v;
}

std::vector<float> random_floats(size_t n, float mean, float spread, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> d(mean, spread);
    std::vector<float> v(n);
    for (auto& x : v) x = d(rng);
    return v;
}

// ---- batch norm: a channel view of width C inside pixels of LD floats, as a dense-block prefix
constexpr int64_t N = 4, H = 9, W = 7, C = 45, LD = 64, P = N * H * W;

struct BnReference {
    std::vector<double> mean, var;
};

BnReference reference_stats(const std::vector<float>& x, int64_t pixels) {
    BnReference r{std::vector<double>(C), std::vector<double>(C)};
    for (int64_t c = 0; c < C; ++c) {
        double s = 0.0;
        for (int64_t p = 0; p < pixels; ++p) s += x[size_t(p * LD + c)];
        const double m = s / pixels;
        double sq = 0.0;
        for (int64_t p = 0; p < pixels; ++p) sq += (x[size_t(p * LD + c)] - m) * (x[size_t(p * LD + c)] - m);
        r.mean[size_t(c)] = m, r.var[size_t(c)] = sq / pixels;
    }
    return r;
}

// Over n*h*w pixels: 252 is one reduction chunk; more, and not a multiple of it, takes the kernels'
// multi-chunk paths, as every map of a real batch does. type: x, dy and y's (and an assigned dx's;
// a dx added into is f32), with inputs the reference sees rounded as the GPU does.
void test_batch_norm(int64_t n, int64_t h, int64_t w, DType type) {
    const int64_t pixels = n * h * w;
    const bool bf = type == DType::bf16;
    auto named = [&](const char* what) {
        return std::string(what) + " [" + std::to_string(pixels) + " pixels" + (bf ? ", bf16]" : "]");
    };
    // f32: a mean that dwarfs the spread, as after a ReLU-free conv with a large bias:
    // E[x^2]-E[x]^2 in float would lose every digit here. bf16 (8 bits) cannot hold such values
    // apart, so there the spread is half the mean.
    const std::vector<float> x = rounded_to(type, random_floats(size_t(pixels * LD), bf ? 1.0f : 30.0f, bf ? 0.5f : 0.05f, 1));
    const std::vector<float> gamma = random_floats(C, 1.0f, 0.3f, 2), beta = random_floats(C, 0.0f, 0.3f, 3);
    const std::vector<float> dy = rounded_to(type, random_floats(size_t(pixels * LD), 0.0f, 1.0f, 4));
    Typed xd(type, x), ddy(type, dy), y(type, size_t(pixels * C));
    Device<float> dgamma_(gamma), dbeta_(beta), mean(C), var(C);
    Device<char> scratch(reduction_scratch_bytes(pixels, C));
    const FeatureMap xv{xd.ptr(), n, h, w, C, LD, type};
    // A value rounded to bf16 is off by up to 2^-9 of itself.
    const double output_bar = bf ? 1e-2 : 1e-5;
    batch_stats(mean.ptr, var.ptr, xv, scratch.ptr, nullptr);
    const BnReference ref = reference_stats(x, pixels);
    const std::vector<float> m = mean.download(), v = var.download();
    // The mean to float's rounding of 30 (1e-6 of it), the variance to 1e-5 of itself.
    expect_close(named("batch_stats: mean"), m, ref.mean, 1e-6);
    expect_close(named(bf ? "batch_stats: variance" : "batch_stats: variance (mean 30, std 0.05)"), v, ref.var, 1e-5);

    // PyTorch's running statistics: momentum 0.1, the variance unbiased over the pixels.
    const std::vector<float> old_mean = random_floats(C, 0.0f, 1.0f, 11), old_var = random_floats(C, 1.0f, 0.1f, 12);
    Device<float> running_mean(old_mean), running_var(old_var);
    update_running_stats(running_mean.ptr, running_var.ptr, mean.ptr, var.ptr, C, pixels, nullptr);
    std::vector<double> want_mean(C), want_var(C);
    for (int64_t c = 0; c < C; ++c) {
        const double momentum = double(kBnMomentum);
        want_mean[size_t(c)] = (1 - momentum) * old_mean[size_t(c)] + momentum * m[size_t(c)];
        want_var[size_t(c)] = (1 - momentum) * old_var[size_t(c)] + momentum * v[size_t(c)] * pixels / (pixels - 1.0);
    }
    expect_close(named("update_running_stats: mean"), running_mean.download(), want_mean, 1e-6);
    expect_close(named("update_running_stats: variance"), running_var.download(), want_var, 1e-6);

    // The rest use the GPU's statistics, as the engine does; the reference recomputes from them.
    std::vector<double> mean_d(m.begin(), m.end()), var_d(v.begin(), v.end());
    auto constants = [&](int64_t c) {
        const double rstd = 1.0 / std::sqrt(var_d[size_t(c)] + double(kBnEps));
        const double scale = gamma[size_t(c)] * rstd;
        return std::array<double, 3>{scale, beta[size_t(c)] - mean_d[size_t(c)] * scale, rstd};
    };
    bn_relu_forward(dense_map(y.ptr(), type, n, h, w, C), xv, mean.ptr, var.ptr, dgamma_.ptr, dbeta_.ptr, nullptr);
    std::vector<double> y_ref(size_t(pixels * C));
    for (int64_t p = 0; p < pixels; ++p)
        for (int64_t c = 0; c < C; ++c) {
            const auto k = constants(c);
            y_ref[size_t(p * C + c)] = std::max(0.0, x[size_t(p * LD + c)] * k[0] + k[1]);
        }
    expect_close(named("bn_relu_forward (strided x, dense y)"), y.download(), y_ref, output_bar);

    Device<float> dg(C), db(C);
    const FeatureMap dyv{ddy.ptr(), n, h, w, C, LD, type};
    bn_relu_backward_params(dg.ptr, db.ptr, dyv, xv, mean.ptr, var.ptr, dgamma_.ptr, dbeta_.ptr, scratch.ptr, nullptr);
    std::vector<double> sg(C, 0.0), sgx(C, 0.0);
    for (int64_t p = 0; p < pixels; ++p)
        for (int64_t c = 0; c < C; ++c) {
            const auto k = constants(c);
            const double v0 = x[size_t(p * LD + c)];
            const double g = v0 * k[0] + k[1] > 0.0 ? dy[size_t(p * LD + c)] : 0.0;
            sg[size_t(c)] += g;
            sgx[size_t(c)] += g * (v0 - mean_d[size_t(c)]) * k[2];
        }
    const std::vector<float> dgamma = dg.download(), dbeta = db.download();
    expect_close(named("bn_relu_backward_params: dbeta"), dbeta, sg, 1e-5);
    // xhat multiplies rounding in the mean by rstd (20 here): a looser bar than dbeta's.
    expect_close(named("bn_relu_backward_params: dgamma"), dgamma, sgx, 1e-4);

    for (Accumulate mode : {Accumulate::assign, Accumulate::add}) {
        const std::vector<float> before = random_floats(size_t(pixels * LD), 0.0f, 1.0f, 5);
        const DType dx_type = mode == Accumulate::add ? DType::f32 : type;
        Typed dxd(dx_type, before);
        const FeatureMap dxv{dxd.ptr(), n, h, w, C, LD, dx_type};
        bn_relu_backward_input(dxv, mode, dyv, xv, mean.ptr, var.ptr, dgamma_.ptr, dbeta_.ptr, dg.ptr, db.ptr, pixels,
                               nullptr);
        const std::vector<float> held = rounded_to(dx_type, before);  // what the untouched channels keep
        std::vector<double> want(held.begin(), held.end());
        for (int64_t p = 0; p < pixels; ++p)
            for (int64_t c = 0; c < C; ++c) {
                const auto k = constants(c);
                const double v0 = x[size_t(p * LD + c)];
                const double g = v0 * k[0] + k[1] > 0.0 ? dy[size_t(p * LD + c)] : 0.0;
                const double d = k[0] * (g - double(dbeta[size_t(c)]) / pixels -
                                         (v0 - mean_d[size_t(c)]) * k[2] * double(dgamma[size_t(c)]) / pixels);
                double& out = want[size_t(p * LD + c)];
                out = mode == Accumulate::add ? out + d : d;
            }
        expect_close(named(mode == Accumulate::add ? "bn_relu_backward_input: add into a strided gradient"
                                                   : "bn_relu_backward_input: assign into a strided gradient"),
                     dxd.download(), want, dx_type == DType::bf16 ? output_bar : 1e-5);
    }
}

// A transition's norm, ReLU and 2x2 average pool in one pass, and its backward reading the pooled
// gradient (DyPixels::avg_pool_2x2), against the same in double. 7 rows: the last is under no
// pooled pixel, and gets no gradient.
void test_transition_pool(DType type) {
    const int64_t n = 2, h = 7, w = 6, oh = h / 2, ow = w / 2, pixels = n * h * w, pooled = n * oh * ow;
    const bool bf = type == DType::bf16;
    const std::string suffix = bf ? " [bf16]" : "";
    const std::vector<float> x = rounded_to(type, random_floats(size_t(pixels * LD), 0.5f, 1.0f, 21));
    const std::vector<float> dy = rounded_to(type, random_floats(size_t(pooled * C), 0.0f, 1.0f, 22));
    const std::vector<float> mean = random_floats(C, 0.5f, 0.2f, 23), gamma = random_floats(C, 1.0f, 0.3f, 25);
    const std::vector<float> beta = random_floats(C, 0.0f, 0.3f, 26);
    std::vector<float> var = random_floats(C, 1.0f, 0.2f, 24);
    for (float& v : var) v = std::abs(v) + 0.1f;
    Typed xd(type, x), dyd(type, dy), y(type, size_t(pooled * C));
    Device<float> md(mean), vd(var), gd(gamma), bd(beta), dg(C), db(C), dx(size_t(pixels * C));
    const FeatureMap xv{xd.ptr(), n, h, w, C, LD, type};
    bn_relu_avg_pool_forward(dense_map(y.ptr(), type, n, oh, ow, C), xv, md.ptr, vd.ptr, gd.ptr, bd.ptr, nullptr);
    auto normalised = [&](int64_t p, int64_t c, double* mask) {
        const double rstd = 1.0 / std::sqrt(double(var[size_t(c)]) + double(kBnEps));
        const double a = (x[size_t(p * LD + c)] - mean[size_t(c)]) * rstd * gamma[size_t(c)] + beta[size_t(c)];
        if (mask) *mask = a > 0.0 ? 1.0 : 0.0;
        return std::array<double, 2>{std::max(0.0, a), (x[size_t(p * LD + c)] - mean[size_t(c)]) * rstd};
    };
    std::vector<double> y_ref(size_t(pooled * C), 0.0);
    for (int64_t q = 0; q < pooled; ++q)
        for (int64_t c = 0; c < C; ++c) {
            const int64_t b = q / (oh * ow), r = q % (oh * ow), top = (b * h + 2 * (r / ow)) * w + 2 * (r % ow);
            for (int64_t p : {top, top + 1, top + w, top + w + 1})
                y_ref[size_t(q * C + c)] += 0.25 * normalised(p, c, nullptr)[0];
        }
    expect_close("bn_relu_avg_pool_forward" + suffix, y.download(), y_ref, bf ? 1e-2 : 1e-5);

    // g at each full-size pixel: a quarter of its pooled pixel's dy where the ReLU was open.
    std::vector<double> g(size_t(pixels * C), 0.0), sg(C, 0.0), sgx(C, 0.0);
    for (int64_t p = 0; p < pixels; ++p)
        for (int64_t c = 0; c < C; ++c) {
            const int64_t b = p / (h * w), r = p % (h * w), ph = r / w / 2, pw = r % w / 2;
            if (ph >= oh || pw >= ow) continue;
            double mask = 0.0;
            const double xhat = normalised(p, c, &mask)[1];
            g[size_t(p * C + c)] = mask * 0.25 * dy[size_t(((b * oh + ph) * ow + pw) * C + c)];
            sg[size_t(c)] += g[size_t(p * C + c)];
            sgx[size_t(c)] += g[size_t(p * C + c)] * xhat;
        }
    const FeatureMap dyv = dense_map(dyd.ptr(), type, n, oh, ow, C);
    Device<char> scratch(reduction_scratch_bytes(pixels, C));
    bn_relu_backward_params(dg.ptr, db.ptr, dyv, xv, md.ptr, vd.ptr, gd.ptr, bd.ptr, scratch.ptr, nullptr,
                            DyPixels::avg_pool_2x2);
    const std::vector<float> dgamma = dg.download(), dbeta = db.download();
    expect_close("bn_relu_backward_params, pooled dy: dbeta" + suffix, dbeta, sg, 1e-5);
    expect_close("bn_relu_backward_params, pooled dy: dgamma" + suffix, dgamma, sgx, 1e-5);
    bn_relu_backward_input(dense_map(dx.ptr, n, h, w, C), Accumulate::assign, dyv, xv, md.ptr, vd.ptr, gd.ptr, bd.ptr,
                           dg.ptr, db.ptr, pixels, nullptr, DyPixels::avg_pool_2x2);
    std::vector<double> dx_ref(size_t(pixels * C));
    for (int64_t p = 0; p < pixels; ++p)
        for (int64_t c = 0; c < C; ++c) {
            const double rstd = 1.0 / std::sqrt(double(var[size_t(c)]) + double(kBnEps));
            const double xhat = normalised(p, c, nullptr)[1];
            dx_ref[size_t(p * C + c)] = gamma[size_t(c)] * rstd *
                                        (g[size_t(p * C + c)] - double(dbeta[size_t(c)]) / pixels -
                                         xhat * double(dgamma[size_t(c)]) / pixels);
        }
    expect_close("bn_relu_backward_input, pooled dy (f32 dx)" + suffix, dx.download(), dx_ref, 1e-5);
}

void test_copy_and_pool() {
    const std::vector<float> block = random_floats(size_t(P * LD), 0.0f, 1.0f, 6);
    Device<float> src(block), dst(size_t(P * 13));
    copy_channels(dense_map(dst.ptr, N, H, W, 13), FeatureMap{src.ptr + 20, N, H, W, 13, LD, DType::f32}, nullptr);
    std::vector<double> want(size_t(P * 13));
    for (int64_t p = 0; p < P; ++p)
        for (int64_t c = 0; c < 13; ++c) want[size_t(p * 13 + c)] = block[size_t(p * LD + 20 + c)];
    expect_close("copy_channels: a slice of a block", dst.download(), want, 0.0);
    // An f32 block gradient's slice into a bf16 operand: each value rounded to nearest even, which
    // is exactly what the host's to_bf16 gives.
    Typed narrow(DType::bf16, size_t(P * 13));
    copy_channels(dense_map(narrow.ptr(), DType::bf16, N, H, W, 13), FeatureMap{src.ptr + 20, N, H, W, 13, LD, DType::f32},
                  nullptr);
    std::vector<double> want_rounded(want.size());
    for (size_t i = 0; i < want.size(); ++i) want_rounded[i] = to_float(to_bf16(float(want[i])));
    expect_close("copy_channels: f32 into bf16", narrow.download(), want_rounded, 0.0);

    Device<float> pooled(size_t(N * C));
    global_avg_pool_forward(pooled.ptr, FeatureMap{src.ptr, N, H, W, C, LD, DType::f32}, nullptr);
    std::vector<double> pool_ref(size_t(N * C), 0.0);
    for (int64_t p = 0; p < P; ++p)
        for (int64_t c = 0; c < C; ++c) pool_ref[size_t((p / (H * W)) * C + c)] += block[size_t(p * LD + c)] / double(H * W);
    expect_close("global_avg_pool_forward", pooled.download(), pool_ref, 1e-6);
    const std::vector<float> dpool = random_floats(size_t(N * C), 0.0f, 1.0f, 7);
    Device<float> dpooled(dpool), dmap(size_t(P * C));
    global_avg_pool_backward(dense_map(dmap.ptr, N, H, W, C), dpooled.ptr, nullptr);
    std::vector<double> back_ref(size_t(P * C));
    for (int64_t p = 0; p < P; ++p)
        for (int64_t c = 0; c < C; ++c) back_ref[size_t(p * C + c)] = dpool[size_t((p / (H * W)) * C + c)] / double(H * W);
    expect_close("global_avg_pool_backward", dmap.download(), back_ref, 1e-6);
}

// e: label smoothing (nn.CrossEntropyLoss(label_smoothing=e)); 0 is the NLL.
void test_loss(double e) {
    const int64_t B = 37, K = 10;
    const std::vector<float> logits = random_floats(size_t(B * K), 0.0f, 3.0f, 8);
    std::vector<int32_t> labels(B);
    for (int64_t i = 0; i < B; ++i) labels[size_t(i)] = int32_t((i * 7) % K);
    Device<float> z(logits), lp{size_t(B * K)}, loss{1}, dz{size_t(B * K)};
    Device<LossRow> rows{size_t(B)};
    Device<int32_t> y(labels);
    log_softmax_nll_forward(loss.ptr, lp.ptr, rows.ptr, z.ptr, y.ptr, B, K, e, nullptr);
    std::vector<double> lp_ref(size_t(B * K)), d_ref(size_t(B * K));
    double total = 0.0;
    for (int64_t n = 0; n < B; ++n) {
        double mx = logits[size_t(n * K)], s = 0.0;
        for (int64_t k = 0; k < K; ++k) mx = std::max(mx, double(logits[size_t(n * K + k)]));
        for (int64_t k = 0; k < K; ++k) s += std::exp(logits[size_t(n * K + k)] - mx);
        for (int64_t k = 0; k < K; ++k) {
            lp_ref[size_t(n * K + k)] = logits[size_t(n * K + k)] - mx - std::log(s);
            total -= e / double(K) * lp_ref[size_t(n * K + k)];  // the smoothed target's share of each class
        }
        total -= (1.0 - e) * lp_ref[size_t(n * K + labels[size_t(n)])];
        for (int64_t k = 0; k < K; ++k) {
            const double target = e / double(K) + (k == labels[size_t(n)] ? 1.0 - e : 0.0);
            d_ref[size_t(n * K + k)] = (std::exp(lp_ref[size_t(n * K + k)]) - target) / 64.0;
        }
    }
    const std::string what = e == 0.0 ? "" : " (label smoothing " + std::to_string(e) + ")";
    expect_close("log_softmax_nll_forward: log_probs" + what, lp.download(), lp_ref, 1e-6);
    expect_close("log_softmax_nll_forward: loss" + what, loss.download(), {total / B}, 1e-6);
    log_softmax_nll_backward(dz.ptr, lp.ptr, y.ptr, B, K, 64, e, nullptr);  // a shard of a batch of 64
    expect_close("log_softmax_nll_backward (loss over a batch of 64)" + what, dz.download(), d_ref, 1e-6);
}

void test_adam(WeightDecay decay) {
    const size_t n = 100003;
    std::vector<float> values = random_floats(n, 0.0f, 0.1f, 9), m = random_floats(n, 0.0f, 1e-3f, 10);
    std::vector<float> v(n), grads = random_floats(n, 0.0f, 1e-2f, 11);
    for (size_t i = 0; i < n; ++i) v[i] = m[i] * m[i] * 3.0f;
    Device<float> dv(values), dm(m), dvv(v), dg(grads);
    const AdamOptions o{.lr = 1e-3, .weight_decay = decay == WeightDecay::l2 ? 1e-4 : 1e-2, .decay = decay};
    const int64_t step = 7;
    adam_step(dv.ptr, dm.ptr, dvv.ptr, dg.ptr, int64_t(n), adam_step_scalars(o, step, o.weight_decay), nullptr);
    std::vector<double> want(n);
    const double c1 = 1.0 - std::pow(o.beta1, double(step)), c2 = std::sqrt(1.0 - std::pow(o.beta2, double(step)));
    for (size_t i = 0; i < n; ++i) {
        const bool l2 = decay == WeightDecay::l2;
        const double g = grads[i] + (l2 ? o.weight_decay * values[i] : 0.0);
        const double w = l2 ? values[i] : values[i] * (1.0 - o.lr * o.weight_decay);
        const double mi = m[i] * o.beta1 + (1 - o.beta1) * g, vi = v[i] * o.beta2 + (1 - o.beta2) * g * g;
        want[i] = w - o.lr / c1 * mi / (std::sqrt(vi) / c2 + o.eps);
    }
    expect_close(decay == WeightDecay::l2 ? "adam_step: weights after a step (torch.optim.Adam)"
                                          : "adam_step: weights after a step (torch.optim.AdamW)",
                 dv.download(), want, 1e-6);
}

// Two steps of SGD with momentum (the first copies the gradient into the buffer), plain or Nesterov.
void test_sgd(bool nesterov) {
    const size_t n = 70001;
    const std::vector<float> values = random_floats(n, 0.0f, 0.1f, 15), g1 = random_floats(n, 0.0f, 1e-2f, 16),
                             g2 = random_floats(n, 0.0f, 1e-2f, 17);
    Device<float> dv(values), buf{n}, dg(g1);
    const SgdOptions o{.lr = 0.05, .momentum = 0.9, .weight_decay = 5e-4, .nesterov = nesterov};
    sgd_step(dv.ptr, buf.ptr, dg.ptr, int64_t(n), sgd_step_scalars(o, 1, o.weight_decay), nullptr);
    dg.upload(g2);
    sgd_step(dv.ptr, buf.ptr, dg.ptr, int64_t(n), sgd_step_scalars(o, 2, o.weight_decay), nullptr);
    std::vector<double> want(n);
    for (size_t i = 0; i < n; ++i) {
        double w = values[i], b = 0.0;
        for (int step = 1; step <= 2; ++step) {
            const double d = (step == 1 ? g1[i] : g2[i]) + o.weight_decay * w;
            b = step == 1 ? d : b * o.momentum + d;
            w -= o.lr * (nesterov ? d + o.momentum * b : b);
        }
        want[i] = w;
    }
    expect_close(nesterov ? "sgd_step: two Nesterov steps (torch.optim.SGD)" : "sgd_step: two momentum steps (torch.optim.SGD)",
                 dv.download(), want, 1e-6);
}

// The weight average's blend: each product and the sum rounded on its own, as PyTorch's ops.
void test_blend_average() {
    const size_t n = 50001;
    const std::vector<float> a = random_floats(n, 0.0f, 0.1f, 19), p = random_floats(n, 0.0f, 0.1f, 20);
    Device<float> da(a), dp(p);
    const float keep = float(0.999), take = float(1.0 - 0.999);
    blend_average(da.ptr, dp.ptr, int64_t(n), keep, take, nullptr);
    std::vector<double> want(n);
    for (size_t i = 0; i < n; ++i) {
        volatile float kept = keep * a[i], taken = take * p[i];  // each rounded, not contracted into an FMA
        want[i] = double(float(kept + taken));
    }
    expect_close("blend_average: the EMA's update (rounded as PyTorch's)", da.download(), want, 1e-7);
}

// clip_grad_norm_ over a parameter table's gradients: one norm below the bound (unchanged), one above.
void test_clip_grad_norm() {
    DenseNetConfig cfg = densenet_preset("densenet121", 10);
    cfg.growth_rate = 8, cfg.block_config = {2, 2}, cfg.num_init_features = 16;
    const Parameters params(cfg);
    const size_t n = size_t(params.count());
    const std::vector<float> grads = random_floats(n, 0.0f, 1e-2f, 18);
    double squares = 0.0;
    for (const TensorEntry& e : params.entries()) {
        if (e.role != TensorRole::parameter) continue;
        double s = 0.0;
        for (int64_t i = e.offset; i < e.offset + e.numel(); ++i) s += double(grads[size_t(i)]) * grads[size_t(i)];
        squares += s;
    }
    const double norm = std::sqrt(squares);
    GradientNorm clipper(params);
    for (const double max_norm : {2.0 * norm, 0.5 * norm}) {
        Device<float> dg(grads);
        clipper.clip(dg.ptr, max_norm, nullptr);
        const double scale = std::min(1.0, max_norm / (norm + 1e-6));
        std::vector<double> want(n);
        for (size_t i = 0; i < n; ++i) want[i] = grads[i] * scale;
        expect_close(max_norm > norm ? "GradientNorm: a norm under the bound (unchanged)" : "GradientNorm: clipped to half",
                     dg.download(), want, 1e-6);
        expect_close("GradientNorm: the norm", {float(clipper.last_norm(nullptr))}, {norm}, 1e-6);
    }
}

// ---- convolutions against a direct loop in double, over NHWC activations and OIHW weights
struct ConvCase {
    const char* name;
    ConvShape s;
};

// type bf16: operands rounded to bf16 (the reference takes the rounded values), results bf16.
void test_conv(cudnnHandle_t handle, const ConvCase& cc, Tf32 tf32, DType type, double bar) {
    const ConvShape& s = cc.s;
    const int64_t OH = s.out_h(), OW = s.out_w();
    const std::vector<float> x =
        rounded_to(type, random_floats(size_t(s.batch * s.in_h * s.in_w * s.in_channels), 0.0f, 1.0f, 12));
    const std::vector<float> w = rounded_to(type, random_floats(size_t(s.weight_count()), 0.0f, 0.1f, 13));
    const std::vector<float> dy =
        rounded_to(type, random_floats(size_t(s.batch * OH * OW * s.out_channels), 0.0f, 1.0f, 14));
    std::vector<double> y_ref(dy.size(), 0.0), dx_ref(x.size(), 0.0), dw_ref(w.size(), 0.0);
    for (int64_t n = 0; n < s.batch; ++n)
        for (int64_t oh = 0; oh < OH; ++oh)
            for (int64_t ow = 0; ow < OW; ++ow)
                for (int64_t o = 0; o < s.out_channels; ++o) {
                    const size_t yi = size_t(((n * OH + oh) * OW + ow) * s.out_channels + o);
                    for (int64_t kh = 0; kh < s.kernel; ++kh)
                        for (int64_t kw = 0; kw < s.kernel; ++kw) {
                            const int64_t ih = oh * s.stride - s.pad + kh, iw = ow * s.stride - s.pad + kw;
                            if (ih < 0 || ih >= s.in_h || iw < 0 || iw >= s.in_w) continue;
                            for (int64_t c = 0; c < s.in_channels; ++c) {
                                const size_t xi = size_t(((n * s.in_h + ih) * s.in_w + iw) * s.in_channels + c);
                                const size_t wi = size_t(((o * s.in_channels + c) * s.kernel + kh) * s.kernel + kw);
                                y_ref[yi] += double(x[xi]) * w[wi];
                                dx_ref[xi] += double(dy[yi]) * w[wi];
                                dw_ref[wi] += double(dy[yi]) * x[xi];
                            }
                        }
                }
    Conv2d conv(handle, s, tf32, type);
    Device<float> dw_oihw(w), dw_back(w.size());
    Typed dxin(type, x), dw_ohwi(type, w.size()), dyd(type, dy), y(type, dy.size()), dx(type, x.size()),
        dwd(type, w.size());
    Device<char> workspace(conv.workspace_bytes());
    oihw_to_ohwi(dw_ohwi.ptr(), type, dw_oihw.ptr, s, nullptr);
    conv.forward(dxin.ptr(), dw_ohwi.ptr(), y.ptr(), workspace.ptr);
    conv.backward_data(dyd.ptr(), dw_ohwi.ptr(), dx.ptr(), workspace.ptr);
    conv.backward_weights(dxin.ptr(), dyd.ptr(), dwd.ptr(), workspace.ptr);
    ohwi_to_oihw(dw_back.ptr, dwd.ptr(), type, s, nullptr);
    const std::string label =
        std::string(cc.name) + (type == DType::bf16 ? ", bf16" : tf32 == Tf32::allowed ? ", TF32" : ", fp32");
    expect_close((label + ": forward").c_str(), y.download(), y_ref, bar);
    expect_close((label + ": backward-data").c_str(), dx.download(), dx_ref, bar);
    expect_close((label + ": backward-weights").c_str(), dw_back.download(), dw_ref, bar);
}

// ---- pooling and the classifier
void test_pool(cudnnHandle_t handle, PoolKind kind, const PoolShape& s, const char* name, DType type) {
    const int64_t OH = s.out_h(), OW = s.out_w(), C = s.channels;
    std::vector<float> x = rounded_to(type, random_floats(size_t(s.batch * s.in_h * s.in_w * C), 0.0f, 1.0f, 15));
    if (type == DType::bf16) {
        // 8-bit values tie often, and a tie sends max pooling's gradient elsewhere: k/128 for
        // k < 256 (exact in bf16), distinct within any window of up to 28 pixels' reach.
        for (int64_t i = 0; i < int64_t(x.size()); ++i) {
            const int64_t c = i % C, pixel = (i / C) % (s.in_h * s.in_w), n = i / (C * s.in_h * s.in_w);
            x[size_t(i)] = float((pixel * 7 + c + n) % 256) / 128.0f;
        }
    }
    const std::vector<float> dy = rounded_to(type, random_floats(size_t(s.batch * OH * OW * C), 0.0f, 1.0f, 16));
    std::vector<double> y_ref(dy.size()), dx_ref(x.size(), 0.0);
    for (int64_t n = 0; n < s.batch; ++n)
        for (int64_t oh = 0; oh < OH; ++oh)
            for (int64_t ow = 0; ow < OW; ++ow)
                for (int64_t c = 0; c < C; ++c) {
                    const size_t yi = size_t(((n * OH + oh) * OW + ow) * C + c);
                    double best = -1e300, sum = 0.0;
                    size_t arg = 0;
                    for (int64_t kh = 0; kh < s.kernel; ++kh)
                        for (int64_t kw = 0; kw < s.kernel; ++kw) {
                            const int64_t ih = oh * s.stride - s.pad + kh, iw = ow * s.stride - s.pad + kw;
                            if (ih < 0 || ih >= s.in_h || iw < 0 || iw >= s.in_w) continue;
                            const size_t xi = size_t(((n * s.in_h + ih) * s.in_w + iw) * C + c);
                            sum += x[xi];
                            if (x[xi] > best) best = x[xi], arg = xi;
                        }
                    const double area = double(s.kernel * s.kernel);  // padding counted, as PyTorch
                    y_ref[yi] = kind == PoolKind::max ? best : sum / area;
                    if (kind == PoolKind::max) {
                        dx_ref[arg] += dy[yi];
                        continue;
                    }
                    for (int64_t kh = 0; kh < s.kernel; ++kh)
                        for (int64_t kw = 0; kw < s.kernel; ++kw) {
                            const int64_t ih = oh * s.stride - s.pad + kh, iw = ow * s.stride - s.pad + kw;
                            if (ih < 0 || ih >= s.in_h || iw < 0 || iw >= s.in_w) continue;
                            dx_ref[size_t(((n * s.in_h + ih) * s.in_w + iw) * C + c)] += dy[yi] / area;
                        }
                }
    Pool2d pool(handle, s, kind, type);
    Typed xd(type, x), yd(type, dy.size()), dyd(type, dy), dxd(type, x.size());
    pool.forward(xd.ptr(), yd.ptr());
    pool.backward(dyd.ptr(), xd.ptr(), yd.ptr(), dxd.ptr());
    const std::string label = std::string(name) + (type == DType::bf16 ? ", bf16" : "");
    const double bar = type == DType::bf16 ? 1e-2 : 1e-6;  // results rounded to bf16: 2^-9 of themselves
    expect_close(label + ": forward", yd.download(), y_ref, bar);
    expect_close(label + ": backward", dxd.download(), dx_ref, bar);
}

void test_linear(cublasHandle_t handle) {
    const int64_t B = 6, I = 40, O = 10;
    const std::vector<float> x = random_floats(size_t(B * I), 0.0f, 1.0f, 17), w = random_floats(size_t(O * I), 0.0f, 0.2f, 18);
    const std::vector<float> b = random_floats(size_t(O), 0.0f, 0.5f, 19), dy = random_floats(size_t(B * O), 0.0f, 1.0f, 20);
    std::vector<double> y_ref(size_t(B * O)), dx_ref(size_t(B * I), 0.0), dw_ref(size_t(O * I), 0.0), db_ref(size_t(O), 0.0);
    for (int64_t n = 0; n < B; ++n)
        for (int64_t o = 0; o < O; ++o) {
            double acc = b[size_t(o)];
            for (int64_t i = 0; i < I; ++i) {
                acc += double(x[size_t(n * I + i)]) * w[size_t(o * I + i)];
                dx_ref[size_t(n * I + i)] += double(dy[size_t(n * O + o)]) * w[size_t(o * I + i)];
                dw_ref[size_t(o * I + i)] += double(dy[size_t(n * O + o)]) * x[size_t(n * I + i)];
            }
            y_ref[size_t(n * O + o)] = acc;
            db_ref[size_t(o)] += dy[size_t(n * O + o)];
        }
    Linear fc(handle, B, I, O);
    Device<float> xd(x), wd(w), bd(b), dyd(dy), y{size_t(B * O)}, dx{size_t(B * I)}, dw{size_t(O * I)}, db{size_t(O)};
    fc.forward(y.ptr, xd.ptr, wd.ptr, bd.ptr, nullptr);
    fc.backward(dx.ptr, dw.ptr, db.ptr, dyd.ptr, xd.ptr, wd.ptr, nullptr);
    expect_close("classifier (cuBLAS): forward", y.download(), y_ref, 1e-6);
    expect_close("classifier (cuBLAS): backward-data", dx.download(), dx_ref, 1e-6);
    expect_close("classifier (cuBLAS): backward-weights", dw.download(), dw_ref, 1e-6);
    expect_close("classifier (cuBLAS): backward-bias", db.download(), db_ref, 1e-6);
}

}  // namespace
}  // namespace dn::cuda

int main() {
    using namespace dn;
    using namespace dn::cuda;
    std::string why;
    const int devices = visible_devices(&why);
    if (devices == 0) {
        std::printf("skipped: no CUDA device is visible (%s)\n", why.c_str());
        return 77;
    }
    std::printf("device 0: %s\n", device_name(0).c_str());
    try {
        test_batch_norm(N, H, W, DType::f32);
        test_batch_norm(3, 29, 31, DType::f32);
        test_batch_norm(3, 29, 31, DType::bf16);
        test_transition_pool(DType::f32);
        test_transition_pool(DType::bf16);
        test_copy_and_pool();
        test_loss(0.0);
        test_loss(0.1);
        test_adam(WeightDecay::l2);
        test_adam(WeightDecay::decoupled);
        test_sgd(false);
        test_sgd(true);
        test_clip_grad_norm();
        test_blend_average();
        cudnnHandle_t handle;
        if (cudnnCreate(&handle) != CUDNN_STATUS_SUCCESS) throw std::runtime_error("cudnnCreate failed");
        const ConvCase cases[] = {
            {"conv0 7x7/2 3->64 at 30x30", {2, 3, 30, 30, 64, 7, 2, 3}},
            {"conv2 3x3 128->32 at 14x14", {2, 128, 14, 14, 32, 3, 1, 1}},
            {"conv1 1x1 96->128 at 7x7", {3, 96, 7, 7, 128, 1, 1, 0}},
        };
        for (const ConvCase& c : cases) {
            // A case cuDNN cannot run (no algorithm for a shape and type) is one failure: the
            // others still run, so that one GPU session sees them all.
            auto attempt = [&](Tf32 tf32, DType type, double bar) {
                try {
                    test_conv(handle, c, tf32, type, bar);
                } catch (const std::exception& e) {
                    ++failures;
                    std::printf("%s (%s): FAILED with %s\n", c.name, type == DType::bf16 ? "bf16" : "fp32", e.what());
                }
            };
            attempt(Tf32::off, DType::f32, 1e-5);
            // TF32 keeps 10 bits of mantissa: products are off by about 1e-3 of their size.
            attempt(Tf32::allowed, DType::f32, 1e-2);
            // bf16 operands exactly as the reference's, sums in f32, results rounded to bf16 (8 bits).
            attempt(Tf32::allowed, DType::bf16, 1e-2);
        }
        for (DType type : {DType::f32, DType::bf16}) {
            test_pool(handle, PoolKind::max, {2, 64, 15, 13, 3, 2, 1}, "pool0 max 3x3/2 pad 1", type);
            test_pool(handle, PoolKind::average, {2, 128, 14, 14, 2, 2, 0}, "transition avg 2x2/2", type);
        }
        cudnnDestroy(handle);
        cublasHandle_t blas;
        if (cublasCreate(&blas) != CUBLAS_STATUS_SUCCESS) throw std::runtime_error("cublasCreate failed");
        test_linear(blas);
        cublasDestroy(blas);
    } catch (const std::exception& e) {
        std::printf("error: %s\n", e.what());
        return 1;
    }
    std::printf(failures ? "%d FAILED\n" : "all passed\n", failures);
    return failures ? 1 : 0;
}
