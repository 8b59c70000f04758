// defines: relative_error, reference_dir, random_vector: what the parity tests share
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

}  // namespace dn::test
