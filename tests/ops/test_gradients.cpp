// Every layer's backward against central finite differences, (f(x+eps) - f(x-eps)) / 2eps, of
// the scalar L = sum(r * y) for a fixed random r, so that dL/dy = r.
#include "ops/batch_norm_relu.h"
#include "ops/conv.h"
#include "ops/linear.h"
#include "ops/loss.h"
#include "ops/pool.h"
#include "ops/precision.h"
#include "test_util.h"

#include <gtest/gtest.h>

#include <cstddef>
#include <functional>
#include <random>
#include <vector>

namespace dn {
namespace {

using test::random_vector;

double dot(const std::vector<float>& a, const std::vector<float>& b) {
    double s = 0.0;
    for (size_t i = 0; i < a.size(); ++i) s += double(a[i]) * double(b[i]);
    return s;
}

// Compares analytic[i] with the finite difference of loss() in input[i], for a spread of i.
void check_gradient(const char* what, std::vector<float>& input, const std::vector<float>& analytic,
                    const std::function<double()>& loss, float eps = 1e-2f, double tol = 2e-2) {
    ASSERT_EQ(input.size(), analytic.size());
    double diff = 0.0, ref = 0.0;
    const size_t stride = std::max<size_t>(1, input.size() / 40);
    for (size_t i = 0; i < input.size(); i += stride) {
        const float saved = input[i];
        input[i] = saved + eps;
        double up = loss();
        input[i] = saved - eps;
        double down = loss();
        input[i] = saved;
        double numeric = (up - down) / (2.0 * double(eps));
        diff += (numeric - analytic[i]) * (numeric - analytic[i]);
        ref += numeric * numeric;
    }
    EXPECT_LE(std::sqrt(diff / std::max(ref, 1e-30)), tol) << what;
}

TEST(Gradients, BatchNormReluOnAStridedViewAccumulates) {
    // x is the first 20 of 36 channels of each pixel, as a dense layer's input prefix.
    const int64_t N = 2, H = 3, W = 3, C = 20, LD = 36, P = N * H * W;
    std::vector<float> storage = random_vector(size_t(P * LD), 1, -2.0f, 2.0f);
    std::vector<float> gamma = random_vector(C, 2, 0.5f, 1.5f), beta = random_vector(C, 3);
    std::vector<float> r = random_vector(size_t(P * C), 4), y(size_t(P * C)), mean(C), var(C);
    FeatureMap x{storage.data(), N, H, W, C, LD};
    FeatureMap out = dense_map(y.data(), N, H, W, C);
    auto loss = [&] {
        batch_stats(mean.data(), var.data(), x);
        bn_relu_forward(out, x, mean.data(), var.data(), gamma.data(), beta.data());
        return dot(y, r);
    };
    loss();
    std::vector<float> grad_storage(storage.size(), 0.5f), dgamma(C), dbeta(C);
    bn_relu_backward(FeatureMap{grad_storage.data(), N, H, W, C, LD}, Accumulate::add, dgamma.data(), dbeta.data(),
                     dense_map(r.data(), N, H, W, C), x, mean.data(), var.data(), gamma.data(), beta.data());
    // Channels past the view are untouched; those in it hold 0.5 plus the gradient.
    std::vector<float> dx(storage.size(), 0.0f);
    for (int64_t p = 0; p < P; ++p)
        for (int64_t c = 0; c < LD; ++c) {
            float g = grad_storage[size_t(p * LD + c)];
            if (c >= C) {
                EXPECT_EQ(g, 0.5f);
            }
            dx[size_t(p * LD + c)] = c < C ? g - 0.5f : 0.0f;
        }
    // A small step, so that few elements cross the ReLU's kink.
    check_gradient("dx", storage, dx, loss, 1e-3f);
    check_gradient("dgamma", gamma, dgamma, loss, 1e-3f);
    check_gradient("dbeta", beta, dbeta, loss, 1e-3f);
}

void check_convolution_gradients(const ConvShape& s, ConvKernels kernels) {
    DnnlContext ctx;
    Conv2d conv(ctx, s, Pass::training, "test", DType::f32, kernels);
    std::vector<std::byte> staging(conv.staging_bytes());
    conv.set_staging(staging.data());
    std::vector<float> x = random_vector(size_t(s.batch * s.in_h * s.in_w * s.in_channels), 5);
    std::vector<float> w = random_vector(size_t(s.weight_count()), 6);
    const size_t out_size = size_t(s.batch * s.out_h() * s.out_w() * s.out_channels);
    std::vector<float> y(out_size), r = random_vector(out_size, 7);
    auto loss = [&] {
        conv.load_weights(w.data());
        conv.forward(x.data(), y.data());
        return dot(y, r);
    };
    loss();
    std::vector<float> dx(x.size()), dw(w.size());
    conv.backward_data(r.data(), dx.data());
    conv.backward_weights(x.data(), r.data(), dw.data());
    check_gradient("conv dx", x, dx, loss);
    check_gradient("conv dw", w, dw, loss);
}

TEST(Gradients, Convolution) { check_convolution_gradients({2, 5, 6, 6, 4, 3, 2, 1}, ConvKernels{}); }

// A pointwise convolution computed as a matrix product, in all three passes.
TEST(Gradients, PointwiseConvolutionAsMatmul) {
    const ConvKernel mm = ConvKernel::matmul;
    check_convolution_gradients({3, 7, 2, 3, 5, 1, 1, 0}, {mm, mm, mm});
}

// A 3x3 convolution with Winograd, in all three passes (its layout changes included).
TEST(Gradients, WinogradConvolution) {
    if (!cpu_has_avx512()) GTEST_SKIP() << "oneDNN has Winograd convolutions only on CPUs with AVX-512";
    const ConvKernel wg = ConvKernel::winograd;
    check_convolution_gradients({2, 5, 6, 7, 4, 3, 1, 1}, {wg, wg, wg});
}

TEST(Gradients, MaxAndAveragePooling) {
    DnnlContext ctx;
    for (PoolKind kind : {PoolKind::max, PoolKind::average}) {
        PoolShape s = kind == PoolKind::max ? PoolShape{2, 3, 7, 7, 3, 2, 1} : PoolShape{2, 3, 6, 6, 2, 2, 0};
        Pool2d pool(ctx, s, kind, Pass::training, "test");
        std::vector<float> x = random_vector(size_t(s.batch * s.in_h * s.in_w * s.channels), 8);
        const size_t out_size = size_t(s.batch * s.out_h() * s.out_w() * s.channels);
        std::vector<float> y(out_size), r = random_vector(out_size, 9);
        std::vector<uint8_t> workspace(pool.workspace_bytes() + 1);
        auto loss = [&] {
            pool.forward(x.data(), y.data(), workspace.data());
            return dot(y, r);
        };
        loss();
        std::vector<float> dx(x.size());
        pool.backward(r.data(), dx.data(), workspace.data());
        check_gradient(kind == PoolKind::max ? "max pool" : "average pool", x, dx, loss, 1e-3f);
    }
}

class GradientsOfTheHead : public testing::TestWithParam<double> {};

// The loss plain (NLL) and with label smoothing, whose gradient has a second term.
TEST_P(GradientsOfTheHead, GlobalAveragePoolLinearAndLoss) {
    const double smoothing = GetParam();
    DnnlContext ctx;
    const int64_t N = 3, H = 2, W = 2, C = 6, K = 4;
    Linear fc(ctx, N, C, K, "test");
    std::vector<float> x = random_vector(size_t(N * H * W * C), 10), w = random_vector(size_t(K * C), 11);
    std::vector<float> b = random_vector(size_t(K), 12), pooled(size_t(N * C)), logits(size_t(N * K)), lp(size_t(N * K));
    std::vector<int32_t> labels{1, 3, 0};
    auto loss = [&] {
        global_avg_pool_forward(pooled.data(), dense_map(x.data(), N, H, W, C));
        fc.forward(logits.data(), pooled.data(), w.data(), b.data());
        return double(log_softmax_nll_forward(lp.data(), logits.data(), labels.data(), N, K, smoothing));
    };
    loss();
    std::vector<float> dlogits(logits.size()), dpooled(pooled.size()), dw(w.size()), db(b.size()), dx(x.size());
    log_softmax_nll_backward(dlogits.data(), lp.data(), labels.data(), N, K, N, smoothing);
    fc.backward(dpooled.data(), dw.data(), db.data(), dlogits.data(), pooled.data(), w.data());
    global_avg_pool_backward(dense_map(dx.data(), N, H, W, C), dpooled.data());
    check_gradient("input", x, dx, loss, 1e-2f);
    check_gradient("classifier weight", w, dw, loss, 1e-2f);
    check_gradient("classifier bias", b, db, loss, 1e-2f);
}

INSTANTIATE_TEST_SUITE_P(LabelSmoothing, GradientsOfTheHead, testing::Values(0.0, 0.1, 0.5));

}  // namespace
}  // namespace dn
