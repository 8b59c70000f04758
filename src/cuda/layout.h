// defines: cuda::nchw_to_nhwc (PyTorch's image batches into the engine's channels-last layout)
#pragma once
#include "tensor/dtype.h"

#include <cuda_runtime.h>

#include <cstdint>

namespace dn::cuda {

// nhwc (of `type`, f32 or bf16) from f32 nchw images.
void nchw_to_nhwc(void* nhwc, DType type, const float* nchw, int64_t n, int64_t c, int64_t h, int64_t w,
                  cudaStream_t stream);

}  // namespace dn::cuda
