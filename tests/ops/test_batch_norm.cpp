// Batch statistics against a two-pass float64 reference, where a one-pass sum of squares would
// cancel (even in double: 1e-3 off here): a channel whose mean is far larger than its spread.
#include "ops/batch_norm_relu.h"
#include "ops/streaming_store.h"
#include "test_util.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <vector>

namespace dn {
namespace {

TEST(BatchStats, MatchFloat64EvenWhenTheMeanDwarfsTheSpread) {
    const int64_t N = 8, H = 13, W = 11, C = 20, LD = 36;  // a strided view, pixels not a multiple of the block
    std::vector<float> storage = test::random_vector(size_t(N * H * W * LD), 3);
    for (int64_t p = 0; p < N * H * W; ++p)
        for (int64_t j = 0; j < C; ++j) storage[size_t(p * LD + j)] = 1000.0f * float(j + 1) + 0.01f * storage[size_t(p * LD + j)];
    const FeatureMap x{storage.data(), N, H, W, C, LD};
    std::vector<float> mean(C), var(C);
    batch_stats(mean.data(), var.data(), x);
    for (int64_t j = 0; j < C; ++j) {
        double sum = 0.0, sq = 0.0;
        for (int64_t p = 0; p < x.pixels(); ++p) sum += storage[size_t(p * LD + j)];
        const double m = sum / double(x.pixels());
        for (int64_t p = 0; p < x.pixels(); ++p) sq += (storage[size_t(p * LD + j)] - m) * (storage[size_t(p * LD + j)] - m);
        const double v = sq / double(x.pixels());
        EXPECT_NEAR(mean[size_t(j)], m, 1e-6 * std::abs(m)) << j;
        EXPECT_NEAR(var[size_t(j)], v, 1e-3 * v) << j;  // the values themselves carry float's rounding of 1000s
    }
}

TEST(BatchStats, SameBitsForAnyThreadCount) {
    const int64_t N = 4, H = 9, W = 9, C = 48;
    std::vector<float> x = test::random_vector(size_t(N * H * W * C), 4, -3.0f, 5.0f);
    std::vector<float> mean1(C), var1(C), mean2(C), var2(C);
    const int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    batch_stats(mean1.data(), var1.data(), dense_map(x.data(), N, H, W, C));
    omp_set_num_threads(3);
    batch_stats(mean2.data(), var2.data(), dense_map(x.data(), N, H, W, C));
    omp_set_num_threads(threads);
    EXPECT_EQ(mean1, mean2);
    EXPECT_EQ(var1, var2);
}

// Operands of convolutions in oneDNN's nChw16c: the statistics read, the normalisation writes,
// and its backward reads, the same values in that layout, bit for bit.
TEST(BatchNormRelu, GivesTheSameBitsInTheBlockedLayout) {
    const int64_t N = 2, H = 5, W = 7, C = 48, P = N * H * W;  // a plane of 35 pixels: off 64-pixel blocks
    std::vector<float> x = test::random_vector(size_t(P * C), 5, -2.0f, 2.0f), dy = test::random_vector(x.size(), 6);
    std::vector<float> gamma = test::random_vector(C, 7, -1.5f, 1.5f), beta = test::random_vector(C, 8);
    const FeatureMap xm = dense_map(x.data(), N, H, W, C);
    std::vector<float> mean(C), var(C), mean_b(C), var_b(C);
    batch_stats(mean.data(), var.data(), xm);
    std::vector<float> x_blocked = test::to_nchw16c(x, N, H, W, C);
    batch_stats(mean_b.data(), var_b.data(), blocked_map(x_blocked.data(), DType::f32, N, H, W, C));
    EXPECT_EQ(mean_b, mean);
    EXPECT_EQ(var_b, var);

    std::vector<float> y(x.size()), y_blocked(x.size());
    bn_relu_forward(dense_map(y.data(), N, H, W, C), xm, mean.data(), var.data(), gamma.data(), beta.data());
    bn_relu_forward(blocked_map(y_blocked.data(), DType::f32, N, H, W, C), xm, mean.data(), var.data(), gamma.data(),
                    beta.data());
    EXPECT_EQ(test::from_nchw16c(y_blocked, N, H, W, C), y);

    std::vector<float> dy_blocked = test::to_nchw16c(dy, N, H, W, C);
    for (Accumulate mode : {Accumulate::assign, Accumulate::add}) {
        std::vector<float> dx(x.size(), 0.5f), dx_b(x.size(), 0.5f), dg(C), db(C), dg_b(C), db_b(C);
        bn_relu_backward(dense_map(dx.data(), N, H, W, C), mode, dg.data(), db.data(), dense_map(dy.data(), N, H, W, C),
                         xm, mean.data(), var.data(), gamma.data(), beta.data());
        bn_relu_backward(dense_map(dx_b.data(), N, H, W, C), mode, dg_b.data(), db_b.data(),
                         blocked_map(dy_blocked.data(), DType::f32, N, H, W, C), xm, mean.data(), var.data(),
                         gamma.data(), beta.data());
        EXPECT_EQ(dx_b, dx);
        EXPECT_EQ(dg_b, dg);
        EXPECT_EQ(db_b, db);
    }
}

// Two dense layers' norm1 backward into one block gradient: each layer's two passes adding its
// input gradient, against one pass each, which adds the terms the layer after left pending and
// leaves its own, applied when the gradient is read. The same sums, up to where float rounds.
TEST(BatchNormRelu, DeferredInputTermsGiveTheTwoPassGradient) {
    const int64_t N = 2, H = 5, W = 7, C = 40, P = N * H * W;
    const int64_t widths[2] = {C, 24};  // the later layer reads all channels, the earlier a prefix
    std::vector<float> x = test::random_vector(size_t(P * C), 11, -2.0f, 2.0f);
    const FeatureMap block = dense_map(x.data(), N, H, W, C);
    std::vector<float> mean(C), var(C);
    batch_stats(mean.data(), var.data(), block);
    const std::vector<float> assigned = test::random_vector(size_t(P * C), 12);  // by the transition or head

    std::vector<float> two_pass = assigned, deferred = assigned;
    std::vector<float> terms(size_t(2 * C), 0.0f);  // none pending for the last layer
    const DeferredInputTerms deferred_terms{terms.data(), terms.data() + C};
    for (int layer = 0; layer < 2; ++layer) {
        const int64_t in = widths[layer];
        std::vector<float> dy = test::random_vector(size_t(P * in), 13 + layer);
        std::vector<float> gamma = test::random_vector(size_t(in), 15 + layer, -1.5f, 1.5f);
        std::vector<float> beta = test::random_vector(size_t(in), 17 + layer);
        const FeatureMap x_in = block.channels(0, in), d_in = dense_map(dy.data(), N, H, W, in);
        std::vector<float> dg(static_cast<size_t>(in)), db(dg), dg_deferred(dg), db_deferred(dg);
        bn_relu_backward(dense_map(two_pass.data(), N, H, W, C).channels(0, in), Accumulate::add, dg.data(), db.data(),
                         d_in, x_in, mean.data(), var.data(), gamma.data(), beta.data());

        // The later layer also recomputes its forward output in the same pass.
        std::vector<float> y(size_t(P * in)), y_forward(size_t(P * in));
        const FeatureMap y_map = dense_map(y.data(), N, H, W, in);
        const FeatureMap dx = dense_map(deferred.data(), N, H, W, C).channels(0, in);
        bn_relu_backward_params(dg_deferred.data(), db_deferred.data(), d_in, x_in, mean.data(), var.data(), gamma.data(),
                                beta.data(), {.recomputed = layer == 0 ? &y_map : nullptr, .deferred_dx = &dx, .pending = deferred_terms});
        bn_relu_defer_input_terms(deferred_terms, in, var.data(), gamma.data(), dg_deferred.data(), db_deferred.data(),
                                  P);
        EXPECT_EQ(dg_deferred, dg);
        EXPECT_EQ(db_deferred, db);
        if (layer == 0) {
            bn_relu_forward(dense_map(y_forward.data(), N, H, W, in), x_in, mean.data(), var.data(), gamma.data(),
                            beta.data());
            EXPECT_EQ(y, y_forward);
        }
    }
    std::vector<float> read(size_t(P * C));
    bn_relu_apply_input_terms(dense_map(read.data(), N, H, W, C), dense_map(deferred.data(), N, H, W, C), block,
                              mean.data(), var.data(), deferred_terms);
    EXPECT_LE(test::relative_error(read.data(), two_pass.data(), P * C), 1e-6);
    EXPECT_GT(test::relative_error(deferred.data(), two_pass.data(), P * C), 1e-3);  // the terms do matter
}

// A transition's norm+relu+2x2 average pool in one pass, on an odd map (floor mode drops the last
// row and column) read as a channel prefix of a wider one: forward against the pool of
// bn_relu_forward's output, and backward from the pooled gradient against the backward from the
// full-size one a pool backward writes, a quarter at each pixel and zero where none pooled.
TEST(BatchNormRelu, AveragePoolInsideIsThePoolOfTheActivation) {
    const int64_t N = 2, H = 5, W = 7, C = 48, in = 40, OH = H / 2, OW = W / 2, P = N * H * W, Q = N * OH * OW;
    std::vector<float> block = test::random_vector(size_t(P * C), 21, -2.0f, 2.0f);
    const FeatureMap x = dense_map(block.data(), N, H, W, C).channels(0, in);
    std::vector<float> gamma = test::random_vector(in, 22, -1.5f, 1.5f), beta = test::random_vector(in, 23);
    std::vector<float> mean(in), var(in);
    batch_stats(mean.data(), var.data(), x);

    std::vector<float> y(size_t(P * in)), pooled(size_t(Q * in)), expected(size_t(Q * in));
    bn_relu_forward(dense_map(y.data(), N, H, W, in), x, mean.data(), var.data(), gamma.data(), beta.data());
    bn_relu_avg_pool_forward(dense_map(pooled.data(), N, OH, OW, in), x, mean.data(), var.data(), gamma.data(),
                             beta.data());
    auto full = [&](int64_t n, int64_t h, int64_t w) { return ((n * H + h) * W + w) * in; };
    for (int64_t n = 0; n < N; ++n)
        for (int64_t oh = 0; oh < OH; ++oh)
            for (int64_t ow = 0; ow < OW; ++ow)
                for (int64_t j = 0; j < in; ++j) {
                    double sum = 0.0;
                    for (int64_t h = 2 * oh; h < 2 * oh + 2; ++h)
                        for (int64_t w = 2 * ow; w < 2 * ow + 2; ++w) sum += y[size_t(full(n, h, w) + j)];
                    expected[size_t(((n * OH + oh) * OW + ow) * in + j)] = float(sum / 4);
                }
    EXPECT_LE(test::relative_error(pooled.data(), expected.data(), Q * in), 1e-6);

    std::vector<float> d_pooled = test::random_vector(size_t(Q * in), 24);
    std::vector<float> d_full(size_t(P * in), 0.0f);  // what a pool backward writes
    for (int64_t n = 0; n < N; ++n)
        for (int64_t h = 0; h < 2 * OH; ++h)
            for (int64_t w = 0; w < 2 * OW; ++w)
                for (int64_t j = 0; j < in; ++j)
                    d_full[size_t(full(n, h, w) + j)] = d_pooled[size_t(((n * OH + h / 2) * OW + w / 2) * in + j)] / 4;
    for (Accumulate mode : {Accumulate::assign, Accumulate::add}) {
        std::vector<float> dx(size_t(P * in), 0.5f), dx_pooled(dx), dg(in), db(in), dg_pooled(in), db_pooled(in);
        const FeatureMap dx_map = dense_map(dx.data(), N, H, W, in);
        const FeatureMap dx_pooled_map = dense_map(dx_pooled.data(), N, H, W, in);
        const FeatureMap dy_full = dense_map(d_full.data(), N, H, W, in);
        const FeatureMap dy_pooled = dense_map(d_pooled.data(), N, OH, OW, in);
        bn_relu_backward(dx_map, mode, dg.data(), db.data(), dy_full, x, mean.data(), var.data(), gamma.data(),
                         beta.data());
        bn_relu_backward_params(dg_pooled.data(), db_pooled.data(), dy_pooled, x, mean.data(), var.data(),
                                gamma.data(), beta.data(), {}, DyPixels::avg_pool_2x2);
        bn_relu_backward_input(dx_pooled_map, mode, dy_pooled, x, mean.data(), var.data(), gamma.data(), beta.data(),
                               dg_pooled.data(), db_pooled.data(), P, DyPixels::avg_pool_2x2);
        EXPECT_EQ(dg_pooled, dg);  // the same quarters, summed in the same order
        EXPECT_EQ(db_pooled, db);
        EXPECT_EQ(dx_pooled, dx);
    }
    // A pooled gradient of the wrong size is refused.
    std::vector<float> sink(size_t(2 * in));
    const FeatureMap wrong = dense_map(d_full.data(), N, H, W, in);
    EXPECT_THROW(bn_relu_backward_params(sink.data(), sink.data() + in, wrong, x, mean.data(), var.data(), gamma.data(),
                                         beta.data(), {}, DyPixels::avg_pool_2x2),
                 std::logic_error);
}

// Outputs of kStreamingMinBytes or more are written with streaming stores (ops/streaming_store.h):
// in both types and layouts, the forward's y and pass 1's recomputed y hold the same bits as the
// plain stores that a strided view (which does not stream) gets.
TEST(BatchNormRelu, StreamedOutputsHoldTheSameBits) {
#if !defined(__AVX__)
    GTEST_SKIP() << "a build without AVX (DENSENET_NATIVE off) has no streaming stores";
#endif
    const int64_t N = 16, H = 128, W = 128, C = 64, LD = C + 16, P = N * H * W;  // 64 MB of f32, 32 MB of bf16
    std::vector<float> x = test::random_vector(size_t(P * C), 31, -2.0f, 2.0f), dy = test::random_vector(x.size(), 32);
    std::vector<float> gamma = test::random_vector(C, 33, -1.5f, 1.5f), beta = test::random_vector(C, 34);
    const FeatureMap xm = dense_map(x.data(), N, H, W, C), dym = dense_map(dy.data(), N, H, W, C);
    std::vector<float> mean(C), var(C);
    batch_stats(mean.data(), var.data(), xm);
    const std::function<void(const FeatureMap&)> writers[2] = {
        [&](const FeatureMap& y) { bn_relu_forward(y, xm, mean.data(), var.data(), gamma.data(), beta.data()); },
        [&](const FeatureMap& y) {
            std::vector<float> sink(size_t(2 * C));
            bn_relu_backward_params(sink.data(), sink.data() + C, dym, xm, mean.data(), var.data(), gamma.data(),
                                    beta.data(), {.recomputed = &y});
        }};
    const char* names[2] = {"forward", "pass 1"};
    struct alignas(64) Line {
        unsigned char bytes[64];
    };
    for (DType type : {DType::f32, DType::bf16}) {
        const size_t size = dtype_bytes(type);
        std::vector<Line> plain(size_t(P * LD) * size / 64), streamed(size_t(P * C) * size / 64);
        const FeatureMap plain_map{plain.data(), N, H, W, C, LD, type};
        ASSERT_FALSE(streams_well(plain_map));
        for (int w = 0; w < 2; ++w) {
            writers[w](plain_map);
            for (Layout layout : {Layout::nhwc, Layout::nchw16c}) {
                const FeatureMap m{streamed.data(), N, H, W, C, C, type, layout};
                ASSERT_TRUE(streams_well(m));
                std::fill(streamed.begin(), streamed.end(), Line{});
                writers[w](m);
                size_t differ = 0;
                auto compare = [&](size_t nhwc, size_t at) {
                    const size_t p = nhwc / size_t(C), j = nhwc % size_t(C);
                    const auto* want =
                        reinterpret_cast<const unsigned char*>(plain.data()) + (p * size_t(LD) + j) * size;
                    const auto* got = reinterpret_cast<const unsigned char*>(streamed.data()) + at * size;
                    differ += std::memcmp(want, got, size) != 0;
                };
                if (layout == Layout::nhwc)
                    for (size_t i = 0; i < size_t(P * C); ++i) compare(i, i);
                else
                    test::for_each_nchw16c(N, H, W, C, compare);
                EXPECT_EQ(differ, 0u) << names[w] << ", " << (type == DType::f32 ? "f32" : "bf16")
                                      << (layout == Layout::nhwc ? ", NHWC" : ", nChw16c");
            }
        }
    }
}

}  // namespace
}  // namespace dn
