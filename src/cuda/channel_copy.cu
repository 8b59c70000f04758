#include "cuda/channel_copy.h"

#include "cuda/cuda_check.h"
#include "cuda/launch.h"

#include <stdexcept>

namespace dn::cuda {

namespace {
__global__ void copy_kernel(float* dst, int64_t ld_dst, const float* src, int64_t ld_src, int64_t P, int64_t C) {
    const int64_t c = int64_t(blockIdx.x) * kChannelTile + threadIdx.x;
    if (c >= C) return;
    for (int64_t p = int64_t(blockIdx.y) * kRowTile + threadIdx.y; p < P; p += int64_t(gridDim.y) * kRowTile)
        dst[p * ld_dst + c] = src[p * ld_src + c];
}
}  // namespace

void copy_channels(const FeatureMap& dst, const FeatureMap& src, cudaStream_t stream) {
    if (dst.pixels() != src.pixels() || dst.c != src.c) throw std::logic_error("cuda copy_channels: shapes differ");
    if (dst.type != DType::f32 || src.type != DType::f32) throw std::logic_error("cuda copy_channels: f32 only (for now)");
    copy_kernel<<<channel_grid(src.pixels(), src.c), channel_block(), 0, stream>>>(
        static_cast<float*>(dst.data), dst.ld, static_cast<const float*>(src.data), src.ld, src.pixels(), src.c);
    CUDA_CHECK(cudaGetLastError());
}

}  // namespace dn::cuda
