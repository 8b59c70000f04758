#include "report/machine_peak.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <vector>

namespace dn {

namespace {
using Clock = std::chrono::steady_clock;

// Enough independent accumulators to cover the FMA latency on every pipe.
constexpr int kChains = 16;

// One register's worth of floats, as GCC's vector extension: the same code compiles to AVX-512,
// AVX2 or plain FMA instructions, whichever the build targets.
#if defined(__AVX512F__)
constexpr int kLanes = 16;
const char* kIsa = "AVX-512";
#elif defined(__AVX__)
constexpr int kLanes = 8;
const char* kIsa = "AVX2";
#else
constexpr int kLanes = 4;
const char* kIsa = "SSE";
#endif
typedef float Register __attribute__((vector_size(kLanes * sizeof(float))));

float fma_chains(long iterations) {
    Register acc[kChains];
    for (int c = 0; c < kChains; ++c) acc[c] = Register{} + float(c);
    const Register a = Register{} + 0.999999f, b = Register{} + 1e-6f;
    for (long i = 0; i < iterations; ++i)
#pragma GCC unroll 16
        for (int c = 0; c < kChains; ++c) acc[c] = acc[c] * a + b;  // contracted to one FMA
    float total = 0.0f;
    for (int c = 0; c < kChains; ++c)
        for (int j = 0; j < kLanes; ++j) total += acc[c][j];
    return total;
}

// The result feeds a volatile so that the loops are not optimised away.
volatile float sink;

double seconds_of_fma(long iterations) {
    const auto start = Clock::now();
    float total = 0.0f;
#pragma omp parallel reduction(+ : total)
    total += fma_chains(iterations);
    sink = total;
    return std::chrono::duration<double>(Clock::now() - start).count();
}

double measure_flops(int threads) {
    long iterations = 100000;
    while (seconds_of_fma(iterations) < 0.05) iterations *= 4;
    double best = 1e30;
    for (int repeat = 0; repeat < 3; ++repeat) best = std::min(best, seconds_of_fma(iterations));
    return double(threads) * double(iterations) * kChains * kLanes * 2.0 / best;
}

double measure_copy_bandwidth() {
    // Eight times the 32 MB L3 of this machine's CPU, so that the copy streams from memory.
    const size_t bytes = size_t(128) << 20;
    std::vector<char> a(bytes, 1), b(bytes, 0);
    double best = 1e30;
    for (int repeat = 0; repeat < 4; ++repeat) {
        const auto start = Clock::now();
#pragma omp parallel
        {
            const size_t parts = size_t(omp_get_num_threads()), part = size_t(omp_get_thread_num());
            const size_t first = bytes * part / parts, last = bytes * (part + 1) / parts;
            std::memcpy(b.data() + first, a.data() + first, last - first);
        }
        best = std::min(best, std::chrono::duration<double>(Clock::now() - start).count());
    }
    sink = float(b[bytes / 2]);
    return 2.0 * double(bytes) / best;
}
}  // namespace

MachinePeak measure_machine_peak() {
    const int threads = omp_get_max_threads();
    MachinePeak peak;
    peak.flops_per_second = measure_flops(threads);
    peak.flops_how = std::to_string(threads) + " threads x " + std::to_string(kChains) + " independent " + kIsa +
                     " FMA chains, measured";
    peak.bytes_per_second = measure_copy_bandwidth();
    peak.bytes_how = "parallel copy of 128 MB (read + write), measured";
    return peak;
}

}  // namespace dn
