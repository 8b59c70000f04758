// The bf16 paths of the ops against their f32 paths on the same (bf16-representable) values: the
// conversion itself, BN+ReLU and the channel copy with bf16 views, and oneDNN's bf16 convolution
// and pooling. A bf16 path may differ from f32 only by where it rounds to bf16.
#include "ops/batch_norm_relu.h"
#include "ops/channel_copy.h"
#include "ops/conv.h"
#include "ops/pool.h"
#include "ops/precision.h"
#include "test_util.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

namespace dn {
namespace {

using test::random_vector;

std::vector<bf16> rounded(const std::vector<float>& v) {
    std::vector<bf16> out(v.size());
    for (size_t i = 0; i < v.size(); ++i) out[i] = to_bf16(v[i]);
    return out;
}

std::vector<float> widened(const std::vector<bf16>& v) {
    std::vector<float> out(v.size());
    for (size_t i = 0; i < v.size(); ++i) out[i] = to_float(v[i]);
    return out;
}

// Values bf16 holds exactly, so that both paths start from the same numbers.
std::vector<float> representable(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
    return widened(rounded(random_vector(n, seed, lo, hi)));
}

float bits_to_float(uint32_t u) { return std::bit_cast<float>(u); }

TEST(Bf16, RoundsToNearestEven) {
    EXPECT_EQ(to_bf16(1.0f).bits, 0x3f80);
    EXPECT_EQ(to_bf16(bits_to_float(0x3f808000)).bits, 0x3f80);  // halfway, to the even 0x3f80
    EXPECT_EQ(to_bf16(bits_to_float(0x3f818000)).bits, 0x3f82);  // halfway, to the even 0x3f82
    EXPECT_EQ(to_bf16(bits_to_float(0x3f808001)).bits, 0x3f81);  // above halfway
    EXPECT_EQ(to_bf16(-2.5f).bits, 0xc020);
    EXPECT_EQ(to_float(to_bf16(std::numeric_limits<float>::infinity())), std::numeric_limits<float>::infinity());
    EXPECT_EQ(to_float(to_bf16(std::numeric_limits<float>::max())), std::numeric_limits<float>::infinity());
    EXPECT_TRUE(std::isnan(to_float(to_bf16(std::numeric_limits<float>::quiet_NaN()))));
    EXPECT_TRUE(std::isnan(to_float(to_bf16(bits_to_float(0x7fffffff)))));  // would round into infinity
}

// The conversion for values that cannot be NaN (ReLU outputs) is the same conversion there: every
// sign and exponent, with the mantissas at and around the rounding boundaries, and infinities.
TEST(Bf16, NotNanConversionIsTheSameForEveryNumber) {
    const uint32_t low_bits[] = {0x0000, 0x0001, 0x7fff, 0x8000, 0x8001, 0xffff};
    for (uint32_t high = 0; high < 0x10000; ++high) {
        if ((high & 0x7f80) == 0x7f80 && (high & 0x7f) != 0) continue;  // NaN
        for (uint32_t low : low_bits) {
            const uint32_t u = (high << 16) | low;
            if ((u & 0x7fffffffu) > 0x7f800000u) continue;  // NaN
            ASSERT_EQ(to_bf16_not_nan(bits_to_float(u)).bits, to_bf16(bits_to_float(u)).bits) << std::hex << u;
        }
    }
}

// oneDNN converts weights (in its reorders) and its kernels convert outputs; ours must agree bit for bit.
TEST(Bf16, ConvertsAsOneDnnDoes) {
    DnnlContext ctx;
    std::vector<float> v = random_vector(4096, 1, -1e3f, 1e3f);
    std::vector<bf16> ours = rounded(v), theirs(v.size());
    dnnl::memory src({{int64_t(v.size())}, dt::f32, tag::x}, ctx.engine(), v.data());
    dnnl::memory dst({{int64_t(v.size())}, dt::bf16, tag::x}, ctx.engine(), theirs.data());
    dnnl::reorder(src, dst).execute(ctx.stream(), src, dst);
    for (size_t i = 0; i < v.size(); ++i) ASSERT_EQ(ours[i].bits, theirs[i].bits) << v[i];
}

TEST(Bf16, ChannelCopyConvertsBothWays) {
    const int64_t N = 2, H = 3, W = 3, C = 20, LD = 36, P = N * H * W;
    std::vector<float> block = random_vector(size_t(P * LD), 2), back(size_t(P * LD), 0.0f);
    std::vector<bf16> dense(size_t(P * C));
    copy_channels(dense_map(dense.data(), N, H, W, C), FeatureMap{block.data(), N, H, W, C, LD});
    copy_channels(FeatureMap{back.data(), N, H, W, C, LD}, dense_map(dense.data(), N, H, W, C));
    for (int64_t p = 0; p < P; ++p)
        for (int64_t c = 0; c < LD; ++c) {
            const size_t i = size_t(p * LD + c);
            EXPECT_EQ(back[i], c < C ? to_float(to_bf16(block[i])) : 0.0f);
        }
}

// Batch norm computes in f32 whatever it reads and writes: on bf16 views it must give the f32
// path's statistics and gamma/beta gradients exactly, and its outputs rounded once.
TEST(Bf16, BatchNormReluMatchesF32OnTheSameValues) {
    const int64_t N = 2, H = 4, W = 4, C = 24, LD = 40, P = N * H * W;
    std::vector<float> xf = representable(size_t(P * LD), 3, -2.0f, 2.0f), dyf = representable(size_t(P * C), 4);
    std::vector<bf16> xb = rounded(xf), dyb = rounded(dyf);
    std::vector<float> gamma = random_vector(C, 5, 0.5f, 1.5f), beta = random_vector(C, 6);
    FeatureMap x32{xf.data(), N, H, W, C, LD}, x16{xb.data(), N, H, W, C, LD, DType::bf16};

    std::vector<float> mean32(C), var32(C), mean16(C), var16(C);
    batch_stats(mean32.data(), var32.data(), x32);
    batch_stats(mean16.data(), var16.data(), x16);
    EXPECT_EQ(mean32, mean16);
    EXPECT_EQ(var32, var16);

    std::vector<float> y32(size_t(P * C));
    std::vector<bf16> y16(size_t(P * C));
    bn_relu_forward(dense_map(y32.data(), N, H, W, C), x32, mean32.data(), var32.data(), gamma.data(), beta.data());
    bn_relu_forward(dense_map(y16.data(), N, H, W, C), x16, mean32.data(), var32.data(), gamma.data(), beta.data());
    for (size_t i = 0; i < y32.size(); ++i) ASSERT_EQ(y16[i].bits, to_bf16(y32[i]).bits) << i;

    // Assigned in bf16 (a convolution's gradient operand), and added to an f32 block gradient.
    std::vector<float> dx32(size_t(P * C)), dg32(C), db32(C), dg16(C), db16(C);
    std::vector<bf16> dx16(size_t(P * C));
    bn_relu_backward(dense_map(dx32.data(), N, H, W, C), Accumulate::assign, dg32.data(), db32.data(),
                     dense_map(dyf.data(), N, H, W, C), x32, mean32.data(), var32.data(), gamma.data(), beta.data());
    bn_relu_backward(dense_map(dx16.data(), N, H, W, C), Accumulate::assign, dg16.data(), db16.data(),
                     dense_map(dyb.data(), N, H, W, C), x16, mean32.data(), var32.data(), gamma.data(), beta.data());
    EXPECT_EQ(dg32, dg16);
    EXPECT_EQ(db32, db16);
    for (size_t i = 0; i < dx32.size(); ++i) ASSERT_EQ(dx16[i].bits, to_bf16(dx32[i]).bits) << i;

    // The memory-efficient backward's pass 1 rewrites the forward output: it must be the same bits.
    std::vector<bf16> again(y16.size());
    std::vector<float> dg(C), db(C);
    const FeatureMap recomputed = dense_map(again.data(), N, H, W, C);
    bn_relu_backward_params(dg.data(), db.data(), dense_map(dyb.data(), N, H, W, C), x16, mean32.data(), var32.data(),
                            gamma.data(), beta.data(), {.recomputed = &recomputed});
    for (size_t i = 0; i < y16.size(); ++i) ASSERT_EQ(again[i].bits, y16[i].bits) << i;
    EXPECT_EQ(dg, dg16);
    EXPECT_EQ(db, db16);

    std::vector<float> acc32(size_t(P * LD), 0.25f), acc16(size_t(P * LD), 0.25f);
    bn_relu_backward(FeatureMap{acc32.data(), N, H, W, C, LD}, Accumulate::add, dg32.data(), db32.data(),
                     dense_map(dyf.data(), N, H, W, C), x32, mean32.data(), var32.data(), gamma.data(), beta.data());
    bn_relu_backward(FeatureMap{acc16.data(), N, H, W, C, LD}, Accumulate::add, dg16.data(), db16.data(),
                     dense_map(dyb.data(), N, H, W, C), x16, mean32.data(), var32.data(), gamma.data(), beta.data());
    EXPECT_EQ(acc32, acc16);
    EXPECT_THROW(bn_relu_backward(dense_map(dx16.data(), N, H, W, C), Accumulate::add, dg16.data(), db16.data(),
                                  dense_map(dyb.data(), N, H, W, C), x16, mean32.data(), var32.data(), gamma.data(),
                                  beta.data()),
                 std::logic_error);
}

// oneDNN's bf16 convolution multiplies bf16 and accumulates in f32: on bf16-representable inputs
// and weights it gives the f32 convolution's result up to the accumulation order, and up to one
// rounding of its bf16 outputs (relative 2^-9 per element); its weight gradient is f32.
TEST(Bf16, ConvolutionMatchesF32OnTheSameValues) {
    if (!cpu_has_bf16()) GTEST_SKIP() << "this CPU has no AVX512-BF16";
    DnnlContext ctx;
    const ConvKernel mm = ConvKernel::matmul;
    struct Case {
        ConvShape shape;
        ConvKernels bf16_kernels;
    };
    for (const auto& [s, kernels] : {Case{{4, 40, 9, 9, 24, 1, 1, 0}, {}}, Case{{4, 24, 9, 9, 12, 3, 1, 1}, {}},
                                     Case{{2, 3, 15, 15, 16, 7, 2, 3}, {}}, Case{{4, 40, 9, 9, 24, 1, 1, 0}, {mm, mm, mm}}}) {
        Conv2d c32(ctx, s, Pass::training, "f32"), c16(ctx, s, Pass::training, "bf16", DType::bf16, kernels);
        const size_t in = size_t(s.batch * s.in_h * s.in_w * s.in_channels);
        const size_t out = size_t(s.batch * s.out_h() * s.out_w() * s.out_channels);
        std::vector<float> x = representable(in, 7), w = representable(size_t(s.weight_count()), 8);
        std::vector<float> dy = representable(out, 9);
        std::vector<bf16> x16 = rounded(x), dy16 = rounded(dy), y16(out), dx16(in);
        std::vector<float> y(out), dx(in), dw(w.size()), dw16(w.size());
        c32.load_weights(w.data());
        c16.load_weights(w.data());
        c32.forward(x.data(), y.data());
        c16.forward(x16.data(), y16.data());
        c32.backward_data(dy.data(), dx.data());
        c16.backward_data(dy16.data(), dx16.data());
        c32.backward_weights(x.data(), dy.data(), dw.data());
        c16.backward_weights(x16.data(), dy16.data(), dw16.data());
        std::vector<float> y16f = widened(y16), dx16f = widened(dx16);
        const double fwd = test::relative_error(y16f.data(), y.data(), int64_t(out));
        const double bwd_data = test::relative_error(dx16f.data(), dx.data(), int64_t(in));
        const double bwd_weights = test::relative_error(dw16.data(), dw.data(), int64_t(dw.size()));
        std::printf("%ldx%ld convolution%s, bf16 against f32: forward %.2g, backward-data %.2g, backward-weights %.2g\n",
                    long(s.kernel), long(s.kernel), kernels.forward == mm ? " as matmul" : "", fwd, bwd_data, bwd_weights);
        EXPECT_LE(fwd, 4e-3);
        EXPECT_LE(bwd_data, 4e-3);
        EXPECT_LE(bwd_weights, 1e-5);
    }
}

TEST(Bf16, PoolingMatchesF32OnTheSameValues) {
    if (!cpu_has_bf16()) GTEST_SKIP() << "this CPU has no AVX512-BF16";
    DnnlContext ctx;
    for (PoolKind kind : {PoolKind::max, PoolKind::average}) {
        PoolShape s = kind == PoolKind::max ? PoolShape{2, 16, 7, 7, 3, 2, 1} : PoolShape{2, 16, 6, 6, 2, 2, 0};
        Pool2d p32(ctx, s, kind, Pass::training, "f32"), p16(ctx, s, kind, Pass::training, "bf16", DType::bf16);
        const size_t in = size_t(s.batch * s.in_h * s.in_w * s.channels);
        const size_t out = size_t(s.batch * s.out_h() * s.out_w() * s.channels);
        std::vector<float> x = representable(in, 10), dy = representable(out, 11), y(out), dx(in);
        std::vector<bf16> x16 = rounded(x), dy16 = rounded(dy), y16(out), dx16(in);
        std::vector<uint8_t> ws32(p32.workspace_bytes() + 1), ws16(p16.workspace_bytes() + 1);
        p32.forward(x.data(), y.data(), ws32.data());
        p16.forward(x16.data(), y16.data(), ws16.data());
        p32.backward(dy.data(), dx.data(), ws32.data());
        p16.backward(dy16.data(), dx16.data(), ws16.data());
        for (size_t i = 0; i < out; ++i) ASSERT_EQ(y16[i].bits, to_bf16(y[i]).bits) << i;
        std::vector<float> dx16f = widened(dx16);
        EXPECT_LE(test::relative_error(dx16f.data(), dx.data(), int64_t(in)), 4e-3);
    }
}

}  // namespace
}  // namespace dn
