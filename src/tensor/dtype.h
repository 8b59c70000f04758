// defines: DType, dtype_bytes, bf16, to_bf16, to_bf16_not_nan, to_float, from_float, from_float_not_nan
#pragma once
#include <bit>
#include <cstddef>
#include <cstdint>

namespace dn {

// The element types activations are stored in. Parameters, gradients, batch statistics and the
// optimizer are always f32; bf16 is only ever an operand of a convolution or a pooling.
enum class DType { f32, bf16 };

constexpr size_t dtype_bytes(DType t) { return t == DType::bf16 ? 2 : 4; }

// bfloat16: the high half of an IEEE float (8-bit exponent, 8-bit mantissa with the implicit
// bit), as oneDNN's memory::data_type::bf16 stores it.
struct bf16 {
    uint16_t bits;
};

// Round to nearest, ties to even, as oneDNN's and PyTorch's conversions do. Plain integer
// arithmetic rather than AVX512-BF16 intrinsics, so the engine builds for any x86-64 and GCC
// still vectorises the loops that call it. NaN stays NaN (rounding could carry it into infinity).
inline bf16 to_bf16(float f) {
    const uint32_t u = std::bit_cast<uint32_t>(f);
    const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    const bool nan = (u & 0x7fffffffu) > 0x7f800000u;
    return {uint16_t(nan ? (u >> 16) | 0x40u : rounded)};
}

inline float to_float(bf16 h) { return std::bit_cast<float>(uint32_t(h.bits) << 16); }

// to_bf16 of a value that cannot be NaN, such as a ReLU's output (max(0, x) is never NaN here):
// the same bits without the NaN test, whose masks a vectorised loop pays for.
inline bf16 to_bf16_not_nan(float f) {
    const uint32_t u = std::bit_cast<uint32_t>(f);
    return {uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16)};
}

// So that one kernel template reads and writes either type.
inline float to_float(float f) { return f; }
template <class T> T from_float(float f);
template <> inline float from_float<float>(float f) { return f; }
template <> inline bf16 from_float<bf16>(float f) { return to_bf16(f); }
template <class T> T from_float_not_nan(float f);
template <> inline float from_float_not_nan<float>(float f) { return f; }
template <> inline bf16 from_float_not_nan<bf16>(float f) { return to_bf16_not_nan(f); }

}  // namespace dn
