// defines: cuda::nchw_to_nhwc (PyTorch's image batches into the engine's channels-last layout)
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace dn::cuda {

void nchw_to_nhwc(float* nhwc, const float* nchw, int64_t n, int64_t c, int64_t h, int64_t w, cudaStream_t stream);

}  // namespace dn::cuda
