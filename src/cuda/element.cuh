// defines: cuda::bf16_t, to_f32, from_f32, with_element_type (the activations' two element types
//          in device code: float, and bf16 as CUDA's __nv_bfloat16, rounded to nearest even as
//          the CPU engine's to_bf16 and PyTorch round)
#pragma once
#include "tensor/dtype.h"

#include <cuda_bf16.h>

#include <type_traits>

namespace dn::cuda {

using bf16_t = __nv_bfloat16;
static_assert(sizeof(bf16_t) == sizeof(bf16), "a device bf16 is the host's bf16 bits");

__device__ inline float to_f32(float v) { return v; }
__device__ inline float to_f32(bf16_t v) { return __bfloat162float(v); }

template <class T>
__device__ T from_f32(float v);
template <>
__device__ inline float from_f32<float>(float v) { return v; }
template <>
__device__ inline bf16_t from_f32<bf16_t>(float v) { return __float2bfloat16_rn(v); }

// Calls f(std::type_identity<T>{}) with T the device element type of `type`, so that a kernel
// template is launched with the type a view holds.
template <class F>
void with_element_type(DType type, F&& f) {
    if (type == DType::bf16) f(std::type_identity<bf16_t>{});
    else f(std::type_identity<float>{});
}

}  // namespace dn::cuda
