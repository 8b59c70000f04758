// Winograd's F(4x4, 3x3) with our transforms and oneDNN's batched matmul (ops/winograd_matmul.h)
// against oneDNN's direct convolution, which the parity tests hold to PyTorch's.
#include "ops/conv.h"
#include "ops/winograd_matmul.h"
#include "test_util.h"

#include <gtest/gtest.h>

#include <cstddef>
#include <vector>

namespace dn {
namespace {

using test::random_vector;

std::vector<float> direct_forward(const ConvShape& s, const std::vector<float>& x, const std::vector<float>& w) {
    DnnlContext ctx;
    Conv2d conv(ctx, s, Pass::inference, "direct", DType::f32, ConvKernels{});
    std::vector<float> y(size_t(s.batch * s.out_h() * s.out_w() * s.out_channels));
    conv.load_weights(w.data());
    conv.forward(x.data(), y.data());
    return y;
}

// The output of a WinogradMatmul whose staging is `room` bytes (0: as much as it asks for).
std::vector<float> winograd_forward(const ConvShape& s, const std::vector<float>& x, const std::vector<float>& w,
                                    size_t room = 0) {
    DnnlContext ctx;
    WinogradMatmul conv(ctx, s, "winograd");
    if (room != 0) {
        EXPECT_TRUE(conv.fit_staging(room));
    }
    std::vector<std::byte> staging(conv.staging_bytes());
    conv.set_staging(staging.data());
    std::vector<float> y(size_t(s.batch * s.out_h() * s.out_w() * s.out_channels), -1.0f);
    conv.load_weights(w.data());
    conv.forward(x.data(), y.data());
    return y;
}

struct Operands {
    std::vector<float> x, w;
};

Operands operands(const ConvShape& s) {
    return {random_vector(size_t(s.batch * s.in_h * s.in_w * s.in_channels), 1),
            random_vector(size_t(s.weight_count()), 2)};
}

// The same sums up to rounding, held to the bar oneDNN's own Winograd kernel meets (test_conv).
// The shapes: DenseNet-121's first block at one image; maps off the 4x4 tiles, cut at the edges;
// channel counts off the transforms' 32-channel runs (40 in, 12 out; 33 in, 70 out); one pixel.
TEST(WinogradMatmul, AgreesWithTheDirectConvolution) {
    for (const ConvShape& s : {ConvShape{1, 128, 56, 56, 32, 3, 1, 1}, ConvShape{2, 40, 9, 7, 12, 3, 1, 1},
                               ConvShape{3, 33, 5, 6, 70, 3, 1, 1}, ConvShape{2, 16, 1, 1, 8, 3, 1, 1}}) {
        const Operands o = operands(s);
        const std::vector<float> want = direct_forward(s, o.x, o.w), got = winograd_forward(s, o.x, o.w);
        EXPECT_LE(test::relative_error(got.data(), want.data(), int64_t(want.size())), 2e-6)
            << s.batch << "x" << s.in_channels << "x" << s.in_h << "x" << s.in_w << " -> " << s.out_channels;
    }
}

// The weight gradient, from the same tiles, against the direct kernel's backward-weights; in
// groups too (each group's products accumulate into one gradient).
TEST(WinogradMatmul, WeightGradientAgreesWithTheDirectConvolutions) {
    for (const ConvShape& s : {ConvShape{2, 128, 30, 26, 32, 3, 1, 1}, ConvShape{3, 33, 5, 6, 70, 3, 1, 1},
                               ConvShape{2, 16, 1, 1, 8, 3, 1, 1}}) {
        const Operands o = operands(s);
        const std::vector<float> dy = random_vector(size_t(s.batch * s.out_h() * s.out_w() * s.out_channels), 3);
        std::vector<float> want(o.w.size()), whole(o.w.size()), grouped(o.w.size());
        DnnlContext ctx;
        Conv2d direct(ctx, s, Pass::training, "direct", DType::f32, ConvKernels{});
        direct.backward_weights(o.x.data(), dy.data(), want.data());
        WinogradMatmul conv(ctx, s, "winograd", WinogradPasses::forward_and_weight_gradient);
        std::vector<std::byte> staging(conv.staging_bytes());
        conv.set_staging(staging.data());
        conv.weight_gradient(o.x.data(), dy.data(), whole.data());
        EXPECT_LE(test::relative_error(whole.data(), want.data(), int64_t(want.size())), 2e-6) << s.in_channels;
        if (conv.fit_staging(conv.staging_bytes() / 2)) {
            conv.weight_gradient(o.x.data(), dy.data(), grouped.data());
            EXPECT_LE(test::relative_error(grouped.data(), want.data(), int64_t(want.size())), 2e-6) << s.in_channels;
        }
    }
    DnnlContext ctx;
    WinogradMatmul forward_only(ctx, {1, 8, 8, 8, 8, 3, 1, 1}, "forward only");
    std::vector<float> x(512), dy(512), dw(576);
    std::vector<std::byte> staging(forward_only.staging_bytes());
    forward_only.set_staging(staging.data());
    EXPECT_THROW(forward_only.weight_gradient(x.data(), dy.data(), dw.data()), std::logic_error);
}

TEST(WinogradMatmul, TilesAreTheOutputsFourByFourBlocks) {
    EXPECT_EQ(winograd_tile_count({1, 128, 56, 56, 32, 3, 1, 1}), 14 * 14);
    EXPECT_EQ(winograd_tile_count({2, 128, 14, 14, 32, 3, 1, 1}), 2 * 4 * 4);
    EXPECT_EQ(winograd_tile_count({3, 8, 9, 5, 8, 3, 1, 1}), 3 * 3 * 2);
}

// With less room than all its tiles need, it takes them in even groups, which compute each tile
// as one group does, but for the order of the products' sums (oneDNN's matmul blocks a product
// by its length: 1.7e-7 apart with oneDNN held to AVX2, 0 on AVX-512).
TEST(WinogradMatmul, GroupsOfTilesComputeWhatOneGroupComputes) {
    const ConvShape s{2, 64, 30, 26, 32, 3, 1, 1};  // 2 x 8 x 7 = 112 tiles
    DnnlContext ctx;
    WinogradMatmul conv(ctx, s, "winograd");
    EXPECT_EQ(conv.tiles_per_group(), 112);
    const size_t room = conv.staging_bytes() / 2 - 1;  // 55 tiles fit: 3 groups of 38, 38, 36
    ASSERT_TRUE(conv.fit_staging(room));
    EXPECT_EQ(conv.tiles_per_group(), 38);
    EXPECT_LE(conv.staging_bytes(), room);
    const Operands o = operands(s);
    const std::vector<float> whole = winograd_forward(s, o.x, o.w), grouped = winograd_forward(s, o.x, o.w, room);
    EXPECT_LE(test::relative_error(grouped.data(), whole.data(), int64_t(whole.size())), 5e-7);
    EXPECT_LE(test::relative_error(grouped.data(), direct_forward(s, o.x, o.w).data(), int64_t(whole.size())), 2e-6);
}

// A batch's tiles come in groups whose staging stays near the cache: at most kGroupStagingBytes.
TEST(WinogradMatmul, LargeBatchesRunInCacheSizedGroups) {
    DnnlContext ctx;
    WinogradMatmul lecture(ctx, {32, 128, 56, 56, 32, 3, 1, 1}, "lecture");
    EXPECT_LE(lecture.staging_bytes(), WinogradMatmul::kGroupStagingBytes);
    EXPECT_EQ(lecture.tiles_per_group(), 273);  // 6272 tiles: 22 groups of 273 and one of 266
    WinogradMatmul image(ctx, {1, 128, 56, 56, 32, 3, 1, 1}, "one image");  // 4.5 MB: one group
    EXPECT_EQ(image.tiles_per_group(), 196);
}

// Groups under kMinTilesPerGroup (32) tiles would run slower than the direct kernels: it says no,
// and keeps its groups.
TEST(WinogradMatmul, RefusesGroupsTooSmallToPay) {
    DnnlContext ctx;
    WinogradMatmul conv(ctx, {1, 128, 56, 56, 32, 3, 1, 1}, "winograd");
    const size_t per_tile = size_t(kWinogradPositions * (128 + 32) * 4);
    // Room for 32 tiles: 7 groups of 28.
    EXPECT_FALSE(conv.fit_staging(per_tile * 32 + 64));
    EXPECT_EQ(conv.tiles_per_group(), 196);
    // Room for 40: 5 groups of 40, 40, 40, 40, 36.
    EXPECT_TRUE(conv.fit_staging(per_tile * 40 + 64));
    EXPECT_EQ(conv.tiles_per_group(), 40);
    // A map with fewer tiles than that takes them in one group or not at all.
    WinogradMatmul small(ctx, {1, 8, 8, 8, 8, 3, 1, 1}, "small");
    EXPECT_TRUE(small.fit_staging(small.staging_bytes()));
    EXPECT_FALSE(small.fit_staging(small.staging_bytes() - 1));
}

TEST(WinogradMatmul, RunsOnlyWithItsStagingAndOnlyWhereItCan) {
    DnnlContext ctx;
    const ConvShape s{1, 8, 8, 8, 8, 3, 1, 1};
    WinogradMatmul conv(ctx, s, "unstaged");
    std::vector<float> x(64 * 8), y(64 * 8), w(size_t(s.weight_count()));
    conv.load_weights(w.data());
    EXPECT_THROW(conv.forward(x.data(), y.data()), std::logic_error);
    EXPECT_THROW(WinogradMatmul(ctx, {1, 8, 8, 8, 8, 1, 1, 0}, "1x1"), std::invalid_argument);
    EXPECT_THROW(WinogradMatmul(ctx, {1, 8, 8, 8, 8, 3, 2, 1}, "strided"), std::invalid_argument);
}

}  // namespace
}  // namespace dn
