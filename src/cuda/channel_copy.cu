#include "cuda/channel_copy.h"

#include "cuda/cuda_check.h"
#include "cuda/element.cuh"
#include "cuda/launch.h"

#include <stdexcept>

namespace dn::cuda {

namespace {
template <class D, class S>
__global__ void copy_kernel(D* dst, int64_t ld_dst, const S* src, int64_t ld_src, int64_t P, int64_t C) {
    const int64_t c = int64_t(blockIdx.x) * kChannelTile + threadIdx.x;
    if (c >= C) return;
    for (int64_t p = int64_t(blockIdx.y) * kRowTile + threadIdx.y; p < P; p += int64_t(gridDim.y) * kRowTile)
        dst[p * ld_dst + c] = from_f32<D>(to_f32(src[p * ld_src + c]));
}
}  // namespace

void copy_channels(const FeatureMap& dst, const FeatureMap& src, cudaStream_t stream) {
    if (dst.pixels() != src.pixels() || dst.c != src.c) throw std::logic_error("cuda copy_channels: shapes differ");
    if (dst.layout != Layout::nhwc || src.layout != Layout::nhwc) throw std::logic_error("cuda copy_channels: NHWC only");
    with_element_type(dst.type, [&](auto dt) {
        with_element_type(src.type, [&](auto st) {
            using D = typename decltype(dt)::type;
            using S = typename decltype(st)::type;
            copy_kernel<<<channel_grid(src.pixels(), src.c), channel_block(), 0, stream>>>(
                static_cast<D*>(dst.data), dst.ld, static_cast<const S*>(src.data), src.ld, src.pixels(), src.c);
        });
    });
    CUDA_CHECK(cudaGetLastError());
}

}  // namespace dn::cuda
