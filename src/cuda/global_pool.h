// defines: cuda::global_avg_pool_forward, cuda::global_avg_pool_backward (the head's
//          adaptive_avg_pool2d to 1x1, as ops/pool.h)
#pragma once
#include "tensor/feature_map.h"

#include <cuda_runtime.h>

namespace dn::cuda {

// y (N,C) = the mean of x (N,H,W,C) over H and W, summed in float in pixel order as the CPU does.
void global_avg_pool_forward(float* y, const FeatureMap& x, cudaStream_t stream);
// dx (N,H,W,C) = dy (N,C) / (H*W), assigned.
void global_avg_pool_backward(const FeatureMap& dx, const float* dy, cudaStream_t stream);

}  // namespace dn::cuda
