// defines: cuda::copy_channels (ops/channel_copy.h on the GPU: a dense layer's new channels into
//          its block buffer, and a block gradient's slice out of it)
#pragma once
#include "tensor/feature_map.h"

#include <cuda_runtime.h>

namespace dn::cuda {

// dst = src, over two views of the same shape (either may be strided). f32.
void copy_channels(const FeatureMap& dst, const FeatureMap& src, cudaStream_t stream);

}  // namespace dn::cuda
