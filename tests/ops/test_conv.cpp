// The two ways a pointwise convolution runs (oneDNN's convolution primitive, and its matmul on the
// OIHW weights) give the same passes, and the default picks each where it was measured faster.
#include "ops/conv.h"
#include "ops/precision.h"
#include "test_util.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <string>
#include <vector>

namespace dn {
namespace {

using test::random_vector;

struct PassResults {
    std::vector<float> y, dx, dw;
};

// Both gradients from the separate passes, or from Conv2d::backward.
enum class Backward { separate, combined };

// `staging_room`, where given, is what the convolution must fit its staging in (fit_staging).
PassResults run_passes(const ConvShape& s, ConvKernels kernels, Backward backward = Backward::separate,
                       size_t staging_room = 0) {
    DnnlContext ctx;
    Conv2d conv(ctx, s, Pass::training, "test", DType::f32, kernels);
    if (staging_room != 0) {
        EXPECT_TRUE(conv.fit_staging(staging_room));
        EXPECT_LE(conv.staging_bytes(), staging_room);
    }
    std::vector<std::byte> staging(conv.staging_bytes());
    conv.set_staging(staging.data());
    const size_t in = size_t(s.batch * s.in_h * s.in_w * s.in_channels);
    const size_t out = size_t(s.batch * s.out_h() * s.out_w() * s.out_channels);
    std::vector<float> x = random_vector(in, 1), w = random_vector(size_t(s.weight_count()), 2);
    std::vector<float> dy = random_vector(out, 3);
    PassResults r{std::vector<float>(out), std::vector<float>(in), std::vector<float>(w.size())};
    conv.load_weights(w.data());
    conv.forward(x.data(), r.y.data());
    if (backward == Backward::combined) {
        conv.backward(x.data(), dy.data(), r.dx.data(), r.dw.data());
    } else {
        conv.backward_data(dy.data(), r.dx.data());
        conv.backward_weights(x.data(), dy.data(), r.dw.data());
    }
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

// Winograd transforms tiles of the input and the weights, multiplies the transforms and transforms
// back: the same sums up to rounding, which these bars (relative to each result's norm) bound.
// Channel counts off oneDNN's 16-channel blocks and maps off its 4x4 tiles are padded and cut.
TEST(Conv, WinogradAndDirectAgree) {
    if (!cpu_has_avx512()) GTEST_SKIP() << "oneDNN has Winograd convolutions only on CPUs with AVX-512";
    const ConvKernel wg = ConvKernel::winograd;
    for (const ConvShape& s : {ConvShape{2, 128, 9, 9, 32, 3, 1, 1}, ConvShape{3, 40, 7, 5, 12, 3, 1, 1},
                               ConvShape{1, 16, 13, 11, 16, 3, 1, 1}}) {
        PassResults direct = run_passes(s, {});
        for (Backward backward : {Backward::separate, Backward::combined}) {
            PassResults winograd = run_passes(s, {wg, wg, wg}, backward);
            EXPECT_LE(test::relative_error(winograd.y.data(), direct.y.data(), int64_t(direct.y.size())), 2e-6);
            EXPECT_LE(test::relative_error(winograd.dx.data(), direct.dx.data(), int64_t(direct.dx.size())), 2e-6);
            EXPECT_LE(test::relative_error(winograd.dw.data(), direct.dw.data(), int64_t(direct.dw.size())), 2e-6);
        }
    }
}

TEST(Conv, WinogradRunsOnlyWithItsStagingAndOnlyWhereItCan) {
    if (!cpu_has_avx512()) GTEST_SKIP() << "oneDNN has Winograd convolutions only on CPUs with AVX-512";
    DnnlContext ctx;
    const ConvKernel wg = ConvKernel::winograd, cv = ConvKernel::convolution;
    const ConvShape s{2, 16, 8, 8, 16, 3, 1, 1};
    Conv2d conv(ctx, s, Pass::training, "unstaged", DType::f32, {wg, wg, wg});
    EXPECT_GE(conv.staging_bytes(), size_t(2 * 64 * 32 * 4));  // its blocked src and dst, at least
    std::vector<float> x(size_t(2 * 64 * 16)), y(x.size()), w(size_t(s.weight_count()));
    conv.load_weights(w.data());
    EXPECT_THROW(conv.forward(x.data(), y.data()), std::logic_error);
    EXPECT_EQ(Conv2d(ctx, s, Pass::training, "direct", DType::f32).staging_bytes(), 0u);
    EXPECT_THROW(Conv2d(ctx, s, Pass::training, "mixed", DType::f32, {wg, cv, cv}), std::invalid_argument);
    EXPECT_THROW(Conv2d(ctx, s, Pass::training, "bf16", DType::bf16, {wg, wg, wg}), std::invalid_argument);
    EXPECT_THROW(Conv2d(ctx, ConvShape{2, 16, 8, 8, 16, 1, 1, 0}, Pass::training, "1x1", DType::f32, {wg, wg, wg}),
                 std::invalid_argument);
}

// A Winograd convolution given its src (and writing its src gradient) in the kernel's own layout
// computes exactly what it computes from NHWC, where it makes that layout itself.
TEST(Conv, WinogradTakesItsSrcInItsOwnLayoutAsItIs) {
    if (!cpu_has_avx512()) GTEST_SKIP() << "oneDNN has Winograd convolutions only on CPUs with AVX-512";
    const ConvKernel wg = ConvKernel::winograd;
    const ConvShape s{2, 128, 9, 9, 32, 3, 1, 1};
    const PassResults staged = run_passes(s, {wg, wg, wg}, Backward::combined);
    DnnlContext ctx;
    Conv2d conv(ctx, s, Pass::training, "blocked", DType::f32, {wg, wg, wg});
    std::vector<std::byte> staging(conv.staging_bytes());
    conv.set_staging(staging.data());
    ASSERT_TRUE(conv.can_take_blocked_src());
    conv.take_blocked_src();
    // run_passes' inputs, its src in nchw16c.
    const size_t in = size_t(s.batch * s.in_h * s.in_w * s.in_channels);
    const size_t out = size_t(s.batch * s.out_h() * s.out_w() * s.out_channels);
    std::vector<float> x = test::to_nchw16c(random_vector(in, 1), s.batch, s.in_h, s.in_w, s.in_channels);
    std::vector<float> w = random_vector(size_t(s.weight_count()), 2), dy = random_vector(out, 3);
    std::vector<float> y(out), dx(in), dw(w.size());
    conv.load_weights(w.data());
    conv.forward(x.data(), y.data());
    conv.backward(x.data(), dy.data(), dx.data(), dw.data());
    EXPECT_EQ(y, staged.y);
    EXPECT_EQ(test::from_nchw16c(dx, s.batch, s.in_h, s.in_w, s.in_channels), staged.dx);
    EXPECT_EQ(dw, staged.dw);
    // The separate backward-data writes it blocked too.
    std::vector<float> dx_alone(in);
    conv.backward_data(dy.data(), dx_alone.data());
    EXPECT_EQ(dx_alone, dx);
}

// Without AVX-512 (an AVX2 CPU, or DNNL_MAX_CPU_ISA below it) oneDNN has no Winograd kernel: the
// default is the engine's own (winograd_matmul), and asking for oneDNN's Winograd is a one-line
// refusal, not oneDNN's error.
TEST(Conv, WinogradOnlyWhereOneDnnHasIt) {
    const ConvShape lecture{32, 128, 56, 56, 32, 3, 1, 1};
    const bool avx512 = cpu_has_avx512();
    EXPECT_EQ(default_conv_kernels(lecture, DType::f32, Pass::training).forward,
              avx512 ? ConvKernel::winograd : ConvKernel::winograd_matmul);
    EXPECT_EQ(default_conv_kernels(lecture, DType::f32, Pass::inference).forward,
              avx512 ? ConvKernel::winograd : ConvKernel::winograd_matmul);
    if (cpu_has_avx512()) return;
    DnnlContext ctx;
    const ConvKernel wg = ConvKernel::winograd;
    try {
        Conv2d(ctx, ConvShape{2, 16, 8, 8, 16, 3, 1, 1}, Pass::training, "conv2", DType::f32, {wg, wg, wg});
        ADD_FAILURE() << "Winograd built on a CPU without AVX-512";
    } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find("AVX-512"), std::string::npos) << e.what();
    }
}

// Every conv2 of densenet121's training at the lecture's shape can: oneDNN chooses nChw16c for them.
TEST(Conv, DenseNetsWinogradShapesReadTheirSrcBlocked) {
    if (!cpu_has_avx512()) GTEST_SKIP() << "oneDNN has Winograd convolutions only on CPUs with AVX-512";
    DnnlContext ctx;
    for (int64_t side : {56, 28, 14, 7}) {
        const ConvShape s{32, 128, side, side, 32, 3, 1, 1};
        EXPECT_TRUE(Conv2d(ctx, s, Pass::training, "conv2", DType::f32).can_take_blocked_src()) << side;
    }
    const ConvShape s{32, 128, 28, 28, 32, 3, 1, 1};
    EXPECT_FALSE(Conv2d(ctx, s, Pass::training, "direct", DType::f32, ConvKernels{}).can_take_blocked_src());
    EXPECT_THROW(Conv2d(ctx, s, Pass::training, "direct", DType::f32, ConvKernels{}).take_blocked_src(),
                 std::logic_error);
}

// The direct kernels on nChw16c activations compute what they compute on NHWC, up to the order
// of their sums; only the convolution primitive with channel counts of 16s runs there.
TEST(Conv, BlockedActivationsGiveTheNhwcResults) {
    const ConvShape s{2, 48, 9, 7, 32, 1, 1, 0};
    const size_t in = size_t(s.batch * s.in_h * s.in_w * s.in_channels);
    const size_t out = size_t(s.batch * s.out_h() * s.out_w() * s.out_channels);
    const PassResults nhwc = run_passes(s, {}, Backward::combined);
    DnnlContext ctx;
    Conv2d conv(ctx, s, Pass::training, "blocked", DType::f32, Layout::nchw16c);
    EXPECT_EQ(conv.activations(), Layout::nchw16c);
    std::vector<float> x = test::to_nchw16c(random_vector(in, 1), s.batch, s.in_h, s.in_w, s.in_channels);
    std::vector<float> w = random_vector(size_t(s.weight_count()), 2);
    std::vector<float> dy = test::to_nchw16c(random_vector(out, 3), s.batch, s.out_h(), s.out_w(), s.out_channels);
    std::vector<float> y(out), dx(in), dw(w.size());
    conv.load_weights(w.data());
    conv.forward(x.data(), y.data());
    conv.backward(x.data(), dy.data(), dx.data(), dw.data());
    const std::vector<float> y_nhwc = test::from_nchw16c(y, s.batch, s.out_h(), s.out_w(), s.out_channels);
    const std::vector<float> dx_nhwc = test::from_nchw16c(dx, s.batch, s.in_h, s.in_w, s.in_channels);
    EXPECT_LE(test::relative_error(y_nhwc.data(), nhwc.y.data(), int64_t(out)), 1e-6);
    EXPECT_LE(test::relative_error(dx_nhwc.data(), nhwc.dx.data(), int64_t(in)), 1e-6);
    EXPECT_LE(test::relative_error(dw.data(), nhwc.dw.data(), int64_t(dw.size())), 1e-6);
    EXPECT_GT(test::relative_error(y.data(), nhwc.y.data(), int64_t(out)), 0.1);  // the layouts do differ

    EXPECT_THROW(Conv2d(ctx, ConvShape{2, 40, 9, 7, 32, 1, 1, 0}, Pass::training, "40 in", DType::f32, Layout::nchw16c),
                 std::invalid_argument);
    EXPECT_THROW(Conv2d(ctx, ConvShape{2, 48, 7, 7, 32, 1, 1, 0}, Pass::training, "matmul", DType::f32, Layout::nchw16c),
                 std::invalid_argument);
}

TEST(Conv, BlockedActivationsWhereTheyWereMeasuredFaster) {
    for (DType type : {DType::f32, DType::bf16}) {
        // AMX multiplies bf16 only in NHWC; without AVX-512, oneDNN's nChw16c kernels are its reference ones.
        const Layout large_pointwise =
            !cpu_has_avx512() || (type == DType::bf16 && cpu_has_amx()) ? Layout::nhwc : Layout::nchw16c;
        EXPECT_EQ(default_activation_layout({32, 64, 56, 56, 128, 1, 1, 0}, type, Pass::training), large_pointwise);
        EXPECT_EQ(default_activation_layout({32, 384, 28, 28, 128, 1, 1, 0}, type, Pass::training), large_pointwise);
        EXPECT_EQ(default_activation_layout({32, 256, 14, 14, 128, 1, 1, 0}, type, Pass::training), Layout::nhwc);
        EXPECT_EQ(default_activation_layout({32, 64, 56, 56, 128, 1, 1, 0}, type, Pass::inference), Layout::nhwc);
        EXPECT_EQ(default_activation_layout({32, 40, 56, 56, 128, 1, 1, 0}, type, Pass::training), Layout::nhwc);
        EXPECT_EQ(default_activation_layout({32, 128, 56, 56, 32, 3, 1, 1}, type, Pass::training), Layout::nhwc);
    }
}

// A map whose every window covers it (3x3 on 2x2, 2x1 and 1x1 maps; 5x5 on 3x3) as one matrix
// product: the same sums in another order, and every tap's gradient, the padding-only ones zero.
TEST(Conv, WholeMapAndDirectAgree) {
    const ConvKernel wm = ConvKernel::whole_map;
    for (const ConvShape& s : {ConvShape{4, 128, 2, 2, 32, 3, 1, 1}, ConvShape{3, 40, 1, 1, 12, 3, 1, 1},
                               ConvShape{2, 16, 2, 1, 8, 3, 1, 1}, ConvShape{2, 8, 3, 3, 4, 5, 1, 2}}) {
        ASSERT_TRUE(covers_whole_map(s));
        PassResults direct = run_passes(s, {});
        for (Backward backward : {Backward::separate, Backward::combined}) {
            PassResults whole = run_passes(s, {wm, wm, wm}, backward);
            EXPECT_LE(test::relative_error(whole.y.data(), direct.y.data(), int64_t(direct.y.size())), 1e-6);
            EXPECT_LE(test::relative_error(whole.dx.data(), direct.dx.data(), int64_t(direct.dx.size())), 1e-6);
            EXPECT_LE(test::relative_error(whole.dw.data(), direct.dw.data(), int64_t(direct.dw.size())), 1e-6);
            if (s.in_h == 1 && s.in_w == 1) {  // only the centre tap sees a pixel
                for (size_t i = 0; i < whole.dw.size(); ++i) {
                    if (i % 9 == 4) continue;
                    ASSERT_EQ(whole.dw[i], 0.0f) << i;
                }
            }
        }
    }
}

TEST(Conv, WholeMapRunsOnlyWhereEveryWindowCoversTheMap) {
    const ConvKernel wm = ConvKernel::whole_map, cv = ConvKernel::convolution;
    DnnlContext ctx;
    EXPECT_FALSE(covers_whole_map({2, 16, 3, 3, 8, 3, 1, 1}));
    EXPECT_FALSE(covers_whole_map({2, 16, 2, 2, 8, 3, 2, 1}));
    EXPECT_FALSE(covers_whole_map({2, 16, 2, 2, 8, 1, 1, 0}));
    EXPECT_THROW(Conv2d(ctx, {2, 16, 3, 3, 8, 3, 1, 1}, Pass::training, "t", DType::f32, {wm, wm, wm}),
                 std::invalid_argument);
    EXPECT_THROW(Conv2d(ctx, {2, 16, 2, 2, 8, 3, 1, 1}, Pass::training, "t", DType::f32, {wm, cv, cv}),
                 std::invalid_argument);
}

TEST(Conv, DefaultKernelsFollowTheMeasurements) {
    const ConvKernel mm = ConvKernel::matmul, cv = ConvKernel::convolution;
    auto kernels = [](const ConvShape& s) {
        ConvKernels k = default_conv_kernels(s, DType::f32, Pass::training);
        return std::vector<ConvKernel>{k.forward, k.backward_data, k.backward_weights};
    };
    // Only pointwise convolutions run as matmul over pixels: 3x3 and the strided stem never do
    // (a 3x3 one on a map its windows cover runs as whole_map, below).
    EXPECT_EQ(kernels({4, 128, 3, 3, 32, 3, 1, 1}), (std::vector{cv, cv, cv}));
    EXPECT_EQ(kernels({32, 3, 224, 224, 64, 7, 2, 3}), (std::vector{cv, cv, cv}));
    // Large maps: the convolution primitive; 7x7 down to 4x4: matmul for the weight gradient; 2x2 and 1x1: all matmul.
    EXPECT_EQ(kernels({32, 256, 56, 56, 128, 1, 1, 0}), (std::vector{cv, cv, cv}));
    EXPECT_EQ(kernels({32, 512, 7, 7, 128, 1, 1, 0}), (std::vector{cv, cv, mm}));
    EXPECT_EQ(kernels({64, 512, 4, 4, 128, 1, 1, 0}), (std::vector{cv, cv, mm}));
    EXPECT_EQ(kernels({64, 512, 2, 2, 128, 1, 1, 0}), (std::vector{mm, mm, mm}));
    EXPECT_EQ(kernels({64, 512, 1, 1, 128, 1, 1, 0}), (std::vector{mm, mm, mm}));
    // Winograd: DenseNet-121's fp32 3x3 training shapes with 1,024 output pixels or more in the
    // batch; not its narrow DenseNet-BC layers, not bf16 (inference below): oneDNN's where it has
    // it (AVX-512: WinogradOnlyWhereOneDnnHasIt), else the engine's own (winograd_matmul).
    const ConvKernel any_wg = cpu_has_avx512() ? ConvKernel::winograd : ConvKernel::winograd_matmul;
    const std::vector<ConvKernel> wg{any_wg, any_wg, any_wg};
    EXPECT_EQ(kernels({32, 128, 56, 56, 32, 3, 1, 1}), wg);
    EXPECT_EQ(kernels({64, 128, 4, 4, 32, 3, 1, 1}), wg);
    // A 3x3 convolution whose windows cover its 2x2 map (from batch 8) or 1x1 map: one matrix product.
    const ConvKernel wm = ConvKernel::whole_map;
    EXPECT_EQ(kernels({64, 128, 2, 2, 32, 3, 1, 1}), (std::vector{wm, wm, wm}));
    EXPECT_EQ(kernels({64, 128, 1, 1, 32, 3, 1, 1}), (std::vector{wm, wm, wm}));
    EXPECT_EQ(kernels({1, 128, 1, 1, 32, 3, 1, 1}), (std::vector{wm, wm, wm}));
    EXPECT_EQ(kernels({4, 128, 2, 2, 32, 3, 1, 1}), (std::vector{cv, cv, cv}));
    EXPECT_EQ(kernels({64, 48, 32, 32, 12, 3, 1, 1}), (std::vector{cv, cv, cv}));
    // bf16 on AMX: matmul for both gradients of every pointwise shape.
    if (cpu_has_amx()) {
        const ConvKernels k = default_conv_kernels({32, 256, 56, 56, 128, 1, 1, 0}, DType::bf16, Pass::training);
        EXPECT_EQ((std::vector{k.forward, k.backward_data, k.backward_weights}), (std::vector{cv, mm, mm}));
    }
    const ConvShape lecture{32, 128, 56, 56, 32, 3, 1, 1};
    EXPECT_EQ(default_conv_kernels(lecture, DType::bf16, Pass::training).forward, cv);
    // Inference: on maps of 28x28 and larger, whatever the batch; without AVX-512, the engine's own.
    const ConvKernel wg_inference = cpu_has_avx512() ? ConvKernel::winograd : ConvKernel::winograd_matmul;
    EXPECT_EQ(default_conv_kernels({1, 128, 56, 56, 32, 3, 1, 1}, DType::f32, Pass::inference).forward, wg_inference);
    EXPECT_EQ(default_conv_kernels({1, 128, 28, 28, 32, 3, 1, 1}, DType::f32, Pass::inference).forward, wg_inference);
    EXPECT_EQ(default_conv_kernels({8, 128, 14, 14, 32, 3, 1, 1}, DType::f32, Pass::inference).forward, cv);
    EXPECT_EQ(default_conv_kernels({1, 128, 56, 56, 32, 3, 1, 1}, DType::bf16, Pass::inference).forward, cv);
}

// An inference convolution's output against the direct kernel's, on random operands, with the
// staging it asks for: their relative error.
double inference_error_against_direct(Conv2d& conv) {
    const ConvShape& s = conv.shape();
    const size_t in = size_t(s.batch * s.in_h * s.in_w * s.in_channels);
    const size_t out = size_t(s.batch * s.out_h() * s.out_w() * s.out_channels);
    std::vector<float> x = random_vector(in, 1), w = random_vector(size_t(s.weight_count()), 2);
    std::vector<float> direct(out), got(out);
    DnnlContext ctx;
    Conv2d plain(ctx, s, Pass::inference, "direct", DType::f32, ConvKernels{});
    std::vector<std::byte> staging(conv.staging_bytes());
    conv.set_staging(staging.data());
    plain.load_weights(w.data());
    conv.load_weights(w.data());
    plain.forward(x.data(), direct.data());
    conv.forward(x.data(), got.data());
    return test::relative_error(got.data(), direct.data(), int64_t(out));
}

// winograd_matmul (ops/winograd_matmul.h, tested there) through Conv2d: the direct kernels' three
// passes, on any CPU, alone or beside the direct weight gradient; fp32 on NHWC without an
// epilogue, or a one-line refusal.
TEST(Conv, WinogradMatmulAndDirectAgreeInTraining) {
    const ConvKernel wm = ConvKernel::winograd_matmul, cv = ConvKernel::convolution;
    for (const ConvShape& s : {ConvShape{2, 128, 9, 9, 32, 3, 1, 1}, ConvShape{3, 40, 7, 5, 12, 3, 1, 1},
                               ConvShape{1, 16, 13, 11, 16, 3, 1, 1}}) {
        PassResults direct = run_passes(s, {});
        for (Backward backward : {Backward::separate, Backward::combined}) {
            PassResults winograd = run_passes(s, {wm, wm, wm}, backward);
            EXPECT_LE(test::relative_error(winograd.y.data(), direct.y.data(), int64_t(direct.y.size())), 2e-6);
            EXPECT_LE(test::relative_error(winograd.dx.data(), direct.dx.data(), int64_t(direct.dx.size())), 2e-6);
            EXPECT_LE(test::relative_error(winograd.dw.data(), direct.dw.data(), int64_t(direct.dw.size())), 2e-6);
        }
        EXPECT_EQ(run_passes(s, {wm, wm, cv}).dw, direct.dw);
    }
    // With its tiles in groups: 112 tiles, groups of 38 in all three passes.
    const ConvShape s{2, 128, 30, 26, 32, 3, 1, 1};
    const size_t room = size_t(kWinogradPositions * (128 + 32) * 4 * 55);
    PassResults direct = run_passes(s, {}), grouped = run_passes(s, {wm, wm, wm}, Backward::combined, room);
    EXPECT_LE(test::relative_error(grouped.y.data(), direct.y.data(), int64_t(direct.y.size())), 2e-6);
    EXPECT_LE(test::relative_error(grouped.dx.data(), direct.dx.data(), int64_t(direct.dx.size())), 2e-6);
    EXPECT_LE(test::relative_error(grouped.dw.data(), direct.dw.data(), int64_t(direct.dw.size())), 2e-6);
}

TEST(Conv, WinogradMatmulFitsTheStagingItIsGiven) {
    const ConvKernel wm = ConvKernel::winograd_matmul, cv = ConvKernel::convolution;
    const ConvShape s{2, 128, 28, 28, 32, 3, 1, 1};
    DnnlContext ctx;
    Conv2d fast(ctx, s, Pass::inference, "winograd_matmul", DType::f32, {wm, cv, cv});
    const size_t all = fast.staging_bytes();
    EXPECT_EQ(all, size_t(36 * 98 * (128 + 32) * 4));
    EXPECT_TRUE(fast.fit_staging(all / 2));  // two groups of 49 tiles
    EXPECT_LE(fast.staging_bytes(), all / 2);
    EXPECT_LE(inference_error_against_direct(fast), 2e-6);
    // A direct convolution needs no staging, and fits any.
    EXPECT_TRUE(Conv2d(ctx, s, Pass::inference, "direct", DType::f32, ConvKernels{}).fit_staging(0));

    EXPECT_THROW(Conv2d(ctx, s, Pass::inference, "bf16", DType::bf16, {wm, cv, cv}), std::invalid_argument);
    EXPECT_THROW(Conv2d(ctx, s, Pass::inference, "epilogue", DType::f32, {wm, cv, cv}, ConvEpilogue::bias_relu),
                 std::invalid_argument);
    EXPECT_THROW(Conv2d(ctx, s, Pass::training, "weight gradient", DType::f32, {cv, cv, wm}), std::invalid_argument);
    EXPECT_THROW(Conv2d(ctx, s, Pass::inference, "weight gradient", DType::f32, {cv, cv, wm}), std::invalid_argument);
}

// An inference convolution with Winograd (oneDNN's F(4x4, 3x3) kernel) gives the direct one's output.
TEST(Conv, WinogradInferenceAndDirectAgree) {
    if (!cpu_has_avx512()) GTEST_SKIP() << "oneDNN has Winograd convolutions only on CPUs with AVX-512";
    const ConvKernel wg = ConvKernel::winograd;
    for (const ConvShape& s : {ConvShape{1, 128, 30, 29, 32, 3, 1, 1}, ConvShape{2, 40, 9, 9, 12, 3, 1, 1}}) {
        DnnlContext ctx;
        Conv2d fast(ctx, s, Pass::inference, "winograd", DType::f32, {wg, wg, wg});
        EXPECT_LE(inference_error_against_direct(fast), 2e-6);
        bool four_by_four = false;
        for (const auto& c : ctx.chosen_impls()) four_by_four |= c.impl.find("wino_4x3") != std::string::npos;
        EXPECT_TRUE(four_by_four);
    }
}

TEST(Conv, MatmulRefusesAConvolutionItCannotCompute) {
    DnnlContext ctx;
    const ConvKernel mm = ConvKernel::matmul, cv = ConvKernel::convolution;
    EXPECT_THROW(Conv2d(ctx, ConvShape{2, 8, 4, 4, 8, 3, 1, 1}, Pass::training, "3x3", DType::f32, {cv, cv, mm}),
                 std::invalid_argument);
    EXPECT_THROW(Conv2d(ctx, ConvShape{2, 8, 4, 4, 8, 1, 2, 0}, Pass::inference, "strided", DType::f32, {mm, cv, cv}),
                 std::invalid_argument);
}

// relu(conv(x, scale * W) + bias) against the plain convolution followed by the same affine map
// and relu, per output channel, on both kernels; negative scales flip channels through the relu.
TEST(Conv, BiasReluEpilogueIsTheFollowingAffineMapAndRelu) {
    const ConvKernel mm = ConvKernel::matmul, cv = ConvKernel::convolution;
    for (const ConvShape& s : {ConvShape{4, 40, 3, 3, 24, 1, 1, 0}, ConvShape{3, 5, 9, 9, 16, 7, 2, 3},
                               ConvShape{8, 136, 1, 1, 128, 1, 1, 0}})
        for (ConvKernel kernel : {cv, mm}) {
            if (kernel == mm && !s.is_pointwise()) continue;
            DnnlContext ctx;
            Conv2d plain(ctx, s, Pass::inference, "plain", DType::f32, ConvKernels{kernel, cv, cv});
            Conv2d fused(ctx, s, Pass::inference, "fused", DType::f32, ConvKernels{kernel, cv, cv},
                         ConvEpilogue::bias_relu);
            const size_t in = size_t(s.batch * s.in_h * s.in_w * s.in_channels);
            const size_t out = size_t(s.batch * s.out_h() * s.out_w() * s.out_channels);
            const size_t O = size_t(s.out_channels);
            std::vector<float> x = random_vector(in, 1), w = random_vector(size_t(s.weight_count()), 2);
            std::vector<float> scale = random_vector(O, 3), bias = random_vector(O, 4);
            std::vector<float> y(out), want(out), got(out);
            plain.load_weights(w.data());
            plain.forward(x.data(), y.data());
            for (size_t j = 0; j < out; ++j)  // NHWC: the channel is the fastest index
                want[j] = std::max(0.0f, scale[j % O] * y[j] + bias[j % O]);
            fused.load_weights(w.data(), scale.data(), bias.data());
            fused.forward(x.data(), got.data());
            EXPECT_LE(test::relative_error(got.data(), want.data(), int64_t(out)), 1e-6)
                << (kernel == mm ? "matmul " : "convolution ") << s.in_channels << "->" << s.out_channels;
            size_t zeros = 0;
            for (float v : got) zeros += v == 0.0f;
            EXPECT_GT(zeros, out / 4);  // the relu acted
            EXPECT_LT(zeros, 3 * out / 4);
        }
}

// An inference network's conv1 writes conv2's Winograd operand in nChw16c with the folded norm2:
// the epilogue gives there what it gives on NHWC.
TEST(Conv, BlockedEpilogueGivesTheNhwcResults) {
    const ConvShape s{2, 48, 9, 7, 32, 1, 1, 0};
    const size_t in = size_t(s.batch * s.in_h * s.in_w * s.in_channels);
    const size_t out = size_t(s.batch * s.out_h() * s.out_w() * s.out_channels);
    DnnlContext ctx;
    Conv2d nhwc(ctx, s, Pass::inference, "nhwc", DType::f32, ConvEpilogue::bias_relu);
    Conv2d blocked(ctx, s, Pass::inference, "blocked", DType::f32, Layout::nchw16c, ConvEpilogue::bias_relu);
    EXPECT_EQ(blocked.activations(), Layout::nchw16c);
    EXPECT_EQ(blocked.epilogue(), ConvEpilogue::bias_relu);
    std::vector<float> x = random_vector(in, 1), w = random_vector(size_t(s.weight_count()), 2);
    std::vector<float> scale = random_vector(size_t(s.out_channels), 3), bias = random_vector(size_t(s.out_channels), 4);
    std::vector<float> want(out), got(out);
    nhwc.load_weights(w.data(), scale.data(), bias.data());
    nhwc.forward(x.data(), want.data());
    blocked.load_weights(w.data(), scale.data(), bias.data());
    const std::vector<float> x_blocked = test::to_nchw16c(x, s.batch, s.in_h, s.in_w, s.in_channels);
    blocked.forward(x_blocked.data(), got.data());
    const std::vector<float> got_nhwc = test::from_nchw16c(got, s.batch, s.out_h(), s.out_w(), s.out_channels);
    EXPECT_LE(test::relative_error(got_nhwc.data(), want.data(), int64_t(out)), 1e-6);
    size_t zeros = 0;
    for (float v : got) zeros += v == 0.0f;
    EXPECT_GT(zeros, out / 4);  // the relu acted
    EXPECT_LT(zeros, 3 * out / 4);
    EXPECT_THROW(Conv2d(ctx, s, Pass::training, "train", DType::f32, Layout::nchw16c, ConvEpilogue::bias_relu),
                 std::invalid_argument);
}

TEST(Conv, EpilogueIsForInferenceWithItsScaleAndBias) {
    DnnlContext ctx;
    const ConvShape s{2, 8, 4, 4, 8, 1, 1, 0};
    EXPECT_THROW(Conv2d(ctx, s, Pass::training, "train", DType::f32, ConvEpilogue::bias_relu), std::invalid_argument);
    Conv2d fused(ctx, s, Pass::inference, "fused", DType::f32, ConvEpilogue::bias_relu);
    std::vector<float> w(size_t(s.weight_count()));
    EXPECT_THROW(fused.load_weights(w.data()), std::logic_error);
}

}  // namespace
}  // namespace dn
