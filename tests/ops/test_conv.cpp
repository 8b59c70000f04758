// The two ways a pointwise convolution runs (oneDNN's convolution primitive, and its matmul on the
// OIHW weights) give the same passes, and the default picks each where it was measured faster.
#include "ops/conv.h"
#include "test_util.h"

#include <gtest/gtest.h>

#include <vector>

namespace dn {
namespace {

using test::random_vector;

struct PassResults {
    std::vector<float> y, dx, dw;
};

PassResults run_passes(const ConvShape& s, ConvKernels kernels) {
    DnnlContext ctx;
    Conv2d conv(ctx, s, Pass::training, "test", DType::f32, kernels);
    const size_t in = size_t(s.batch * s.in_h * s.in_w * s.in_channels);
    const size_t out = size_t(s.batch * s.out_h() * s.out_w() * s.out_channels);
    std::vector<float> x = random_vector(in, 1), w = random_vector(size_t(s.weight_count()), 2);
    std::vector<float> dy = random_vector(out, 3);
    PassResults r{std::vector<float>(out), std::vector<float>(in), std::vector<float>(w.size())};
    conv.load_weights(w.data());
    conv.forward(x.data(), r.y.data());
    conv.backward_data(dy.data(), r.dx.data());
    conv.backward_weights(x.data(), dy.data(), r.dw.data());
    return r;
}

// Both sum the same products in f32, in different orders.
TEST(Conv, MatmulAndConvolutionPrimitiveAgree) {
    const ConvKernel mm = ConvKernel::matmul;
    for (const ConvShape& s : {ConvShape{4, 40, 3, 3, 24, 1, 1, 0}, ConvShape{64, 136, 1, 1, 128, 1, 1, 0},
                               ConvShape{2, 19, 5, 7, 33, 1, 1, 0}, ConvShape{4, 992, 1, 1, 128, 1, 1, 0}}) {
        PassResults conv = run_passes(s, {}), matmul = run_passes(s, {mm, mm, mm});
        EXPECT_LE(test::relative_error(matmul.y.data(), conv.y.data(), int64_t(conv.y.size())), 1e-6);
        EXPECT_LE(test::relative_error(matmul.dx.data(), conv.dx.data(), int64_t(conv.dx.size())), 1e-6);
        EXPECT_LE(test::relative_error(matmul.dw.data(), conv.dw.data(), int64_t(conv.dw.size())), 1e-6);
    }
}

TEST(Conv, DefaultKernelsFollowTheMeasurements) {
    const ConvKernel mm = ConvKernel::matmul, cv = ConvKernel::convolution;
    auto kernels = [](const ConvShape& s) {
        ConvKernels k = default_conv_kernels(s);
        return std::vector<ConvKernel>{k.forward, k.backward_data, k.backward_weights};
    };
    // Only pointwise convolutions can be matrix products: 3x3 and the strided stem never are.
    EXPECT_EQ(kernels({64, 128, 1, 1, 32, 3, 1, 1}), (std::vector{cv, cv, cv}));
    EXPECT_EQ(kernels({32, 3, 224, 224, 64, 7, 2, 3}), (std::vector{cv, cv, cv}));
    // Large maps: the convolution primitive; 7x7 down to 2x2: matmul for the weight gradient; 1x1: all matmul.
    EXPECT_EQ(kernels({32, 256, 56, 56, 128, 1, 1, 0}), (std::vector{cv, cv, cv}));
    EXPECT_EQ(kernels({32, 512, 7, 7, 128, 1, 1, 0}), (std::vector{cv, cv, mm}));
    EXPECT_EQ(kernels({64, 512, 2, 2, 128, 1, 1, 0}), (std::vector{cv, cv, mm}));
    EXPECT_EQ(kernels({64, 512, 1, 1, 128, 1, 1, 0}), (std::vector{mm, mm, mm}));
}

TEST(Conv, MatmulRefusesAConvolutionItCannotCompute) {
    DnnlContext ctx;
    const ConvKernel mm = ConvKernel::matmul, cv = ConvKernel::convolution;
    EXPECT_THROW(Conv2d(ctx, ConvShape{2, 8, 4, 4, 8, 3, 1, 1}, Pass::training, "3x3", DType::f32, {cv, cv, mm}),
                 std::invalid_argument);
    EXPECT_THROW(Conv2d(ctx, ConvShape{2, 8, 4, 4, 8, 1, 2, 0}, Pass::inference, "strided", DType::f32, {mm, cv, cv}),
                 std::invalid_argument);
}

}  // namespace
}  // namespace dn
