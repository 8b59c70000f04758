#include "report/machine_peak.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <vector>

namespace dn {

namespace {
using Clock = std::chrono::steady_clock;

// Independent accumulators: enough to cover the FMA latency on every pipe (4 cycles x 2 pipes on
// current x86 cores), few enough that they and the two operands stay in registers. 16 of AVX2's 16
// registers did not fit: GCC kept them in memory, a load and a store around each FMA, and an AMD
// Zen 3 measured 109 GFLOP/s, under what oneDNN's convolutions reached (129). Each chain starts
// away from 1, the fixed point of x * a + b, which GCC would otherwise fold out of the loop.
constexpr int kChainsOf32Registers = 16;  // AVX-512
constexpr int kChainsOf16Registers = 12;  // AVX2 and SSE

// One register's worth of floats, as GCC's vector extension, in three widths, each compiled for its
// instruction set whatever the build targets: a portable build (the .deb) still measures the
// CPU's own peak, chosen at run time.
#define DENSENET_FMA_CHAINS(name, lanes, chains, isa_target)                            \
    __attribute__((target(isa_target))) float name(long iterations) {                   \
        typedef float Register __attribute__((vector_size(lanes * sizeof(float))));     \
        Register acc[chains];                                                           \
        for (int c = 0; c < chains; ++c) acc[c] = Register{} + float(c + 2);            \
        const Register a = Register{} + 0.999999f, b = Register{} + 1e-6f;              \
        for (long i = 0; i < iterations; ++i)                                           \
            for (int c = 0; c < chains; ++c) acc[c] = acc[c] * a + b; /* one FMA each */ \
        float total = 0.0f;                                                             \
        for (int c = 0; c < chains; ++c)                                                \
            for (int j = 0; j < lanes; ++j) total += acc[c][j];                         \
        return total;                                                                   \
    }
DENSENET_FMA_CHAINS(fma_chains_avx512, 16, kChainsOf32Registers, "avx512f,fma")
DENSENET_FMA_CHAINS(fma_chains_avx2, 8, kChainsOf16Registers, "avx2,fma")
DENSENET_FMA_CHAINS(fma_chains_sse, 4, kChainsOf16Registers, "sse2")
#undef DENSENET_FMA_CHAINS

struct Isa {
    const char* name;
    int lanes, chains;
    float (*run)(long);
};

Isa this_cpu() {
    if (__builtin_cpu_supports("avx512f")) return {"AVX-512", 16, kChainsOf32Registers, fma_chains_avx512};
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return {"AVX2", 8, kChainsOf16Registers, fma_chains_avx2};
    return {"SSE", 4, kChainsOf16Registers, fma_chains_sse};
}

// The result feeds a volatile so that the loops are not optimised away.
volatile float sink;

double seconds_of_fma(const Isa& isa, long iterations) {
    const auto start = Clock::now();
    float total = 0.0f;
#pragma omp parallel reduction(+ : total)
    total += isa.run(iterations);
    sink = total;
    return std::chrono::duration<double>(Clock::now() - start).count();
}

double measure_flops(const Isa& isa, int threads) {
    long iterations = 100000;
    while (seconds_of_fma(isa, iterations) < 0.05) iterations *= 4;
    double best = 1e30;
    for (int repeat = 0; repeat < 3; ++repeat) best = std::min(best, seconds_of_fma(isa, iterations));
    return double(threads) * double(iterations) * isa.chains * isa.lanes * 2.0 / best;
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
    const Isa isa = this_cpu();
    peak.flops_per_second = measure_flops(isa, threads);
    peak.flops_how = std::to_string(threads) + " threads x " + std::to_string(isa.chains) + " independent " + isa.name +
                     " FMA chains, measured";
    peak.bytes_per_second = measure_copy_bandwidth();
    peak.bytes_how = "parallel copy of 128 MB (read + write), measured";
    return peak;
}

}  // namespace dn
