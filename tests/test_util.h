// defines: relative_error, reference_dir, random_vector, for_each_nchw16c, to_nchw16c, from_nchw16c: what the
//          tests share
#pragma once
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

namespace dn::test {

// ||a - b|| / ||b||, the per-tensor normalised error (ggml's test-backend-ops uses the same idea).
inline double relative_error(const float* a, const float* b, int64_t n) {
    double diff = 0.0, ref = 0.0;
    for (int64_t i = 0; i < n; ++i) {
        diff += (double(a[i]) - double(b[i])) * (double(a[i]) - double(b[i]));
        ref += double(b[i]) * double(b[i]);
    }
    if (ref == 0.0) return std::sqrt(diff);
    return std::sqrt(diff / ref);
}

// Where make_reference.py wrote the PyTorch fixtures; ctest runs it first.
inline std::string reference_dir() {
    const char* dir = std::getenv("DENSENET_REFERENCE_DIR");
    return dir ? dir : DENSENET_DEFAULT_REFERENCE_DIR;
}

// n values uniform in [lo, hi) from a seeded generator: the same inputs on every run.
inline std::vector<float> random_vector(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> u(lo, hi);
    std::vector<float> v(n);
    for (auto& x : v) x = u(rng);
    return v;
}

// An NHWC map (N,H,W,C) rewritten in oneDNN's nChw16c (C a multiple of 16), written out here
// index by index, and back. f(nhwc index, nChw16c index) for every element.
template <class F>
void for_each_nchw16c(int64_t N, int64_t H, int64_t W, int64_t C, F&& f) {
    for (int64_t n = 0; n < N; ++n)
        for (int64_t y = 0; y < H; ++y)
            for (int64_t x = 0; x < W; ++x)
                for (int64_t c = 0; c < C; ++c)
                    f(size_t(((n * H + y) * W + x) * C + c), size_t((((n * (C / 16) + c / 16) * H + y) * W + x) * 16 + c % 16));
}
inline std::vector<float> to_nchw16c(const std::vector<float>& nhwc, int64_t N, int64_t H, int64_t W, int64_t C) {
    std::vector<float> blocked(nhwc.size());
    for_each_nchw16c(N, H, W, C, [&](size_t plain, size_t block) { blocked[block] = nhwc[plain]; });
    return blocked;
}
inline std::vector<float> from_nchw16c(const std::vector<float>& blocked, int64_t N, int64_t H, int64_t W, int64_t C) {
    std::vector<float> nhwc(blocked.size());
    for_each_nchw16c(N, H, W, C, [&](size_t plain, size_t block) { nhwc[plain] = blocked[block]; });
    return nhwc;
}

}  // namespace dn::test
