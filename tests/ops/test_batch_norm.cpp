// Batch statistics against a two-pass float64 reference, where a one-pass sum of squares would
// cancel (even in double: 1e-3 off here): a channel whose mean is far larger than its spread.
#include "ops/batch_norm_relu.h"
#include "test_util.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
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

}  // namespace
}  // namespace dn
