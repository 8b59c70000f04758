// defines: Precision, precision_name, parse_precision, operand_type, cpu_has_avx512, cpu_has_bf16,
//          cpu_has_amx, usable_precision
#pragma once
#include "tensor/dtype.h"

#include <string>

namespace dn {

// fp32: everything in float. bf16: mixed precision as torch.autocast on the CPU: convolutions
// multiply bf16 operands with f32 accumulation; batch norm, its statistics, the classifier, the
// loss, every parameter, gradient and the optimizer stay f32 (the checkpoint too).
enum class Precision { fp32, bf16 };

const char* precision_name(Precision p);
Precision parse_precision(const std::string& name);  // "fp32" or "bf16"; std::invalid_argument otherwise

// The element type a convolution's operands (src, weights, diff_dst, diff_src) are stored in.
inline DType operand_type(Precision p) { return p == Precision::bf16 ? DType::bf16 : DType::f32; }

// Whether oneDNN runs its AVX-512 kernels here (avx512_core). Without them (an AVX2 CPU, or
// DNNL_MAX_CPU_ISA below it) oneDNN has no Winograd convolution at all, and its kernels for the
// nChw16c layout are its reference ones, about a hundred times slower than its AVX2 kernels for NHWC.
bool cpu_has_avx512();

// Whether oneDNN runs its AVX512-BF16 kernels here (it honours DNNL_MAX_CPU_ISA, so a lower
// limit reads as no). Without them bf16 convolutions would be emulated, slower than fp32.
bool cpu_has_bf16();

// Whether oneDNN runs its AMX kernels here (Intel's tile unit: bf16 convolutions several times
// faster than AVX512-BF16, but only for some layouts; DNNL_MAX_CPU_ISA can hide it too).
bool cpu_has_amx();

// The precision to run: `requested`, or fp32 with one line on stderr saying so when bf16 is
// requested on a CPU without AVX512-BF16.
Precision usable_precision(Precision requested);

}  // namespace dn
