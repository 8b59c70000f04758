// defines: cuda::copy_channels (ops/channel_copy.h on the GPU: a dense layer's new channels into
//          its block buffer, and a block gradient's slice out of it)
#pragma once
#include "tensor/feature_map.h"

#include <cuda_runtime.h>

namespace dn::cuda {

// dst = src, over two views of the same shape (either may be strided), of either type: f32 to
// bf16 rounds to nearest even (a block's f32 gradient into a bf16 convolution operand).
void copy_channels(const FeatureMap& dst, const FeatureMap& src, cudaStream_t stream);

}  // namespace dn::cuda
