#include "ops/precision.h"

#include <oneapi/dnnl/dnnl.hpp>

#include <cstdio>
#include <stdexcept>

namespace dn {

const char* precision_name(Precision p) { return p == Precision::bf16 ? "bf16" : "fp32"; }

Precision parse_precision(const std::string& name) {
    if (name == "fp32") return Precision::fp32;
    if (name == "bf16") return Precision::bf16;
    throw std::invalid_argument("--precision must be fp32 or bf16, not '" + name + "'");
}

namespace {

// cpu_isa values are bit sets: an ISA includes another when it has all of its bits (avx2_vnni is
// numerically larger than avx512_core_bf16 but has no bf16).
bool effective_isa_includes(dnnl::cpu_isa isa) {
    const auto want = unsigned(isa);
    return (unsigned(dnnl::get_effective_cpu_isa()) & want) == want;
}

}  // namespace

bool cpu_has_avx512() {
    static const bool has = effective_isa_includes(dnnl::cpu_isa::avx512_core);
    return has;
}

bool cpu_has_bf16() {
    static const bool has = effective_isa_includes(dnnl::cpu_isa::avx512_core_bf16);
    return has;
}

bool cpu_has_amx() {
    static const bool has = effective_isa_includes(dnnl::cpu_isa::avx512_core_amx);
    return has;
}

Precision usable_precision(Precision requested) {
    if (requested != Precision::bf16 || cpu_has_bf16()) return requested;
    std::fprintf(stderr, "this CPU has no AVX512-BF16 (or DNNL_MAX_CPU_ISA hides it): running fp32 instead of bf16\n");
    return Precision::fp32;
}

}  // namespace dn
