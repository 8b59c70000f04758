#include "cuda/layout.h"

#include "cuda/cuda_check.h"
#include "cuda/element.cuh"

namespace dn::cuda {

namespace {
// One thread per output element; the reads of a warp are strided by H*W, which a 3-channel image
// batch (a few MB per step) can afford.
template <class T>
__global__ void nchw_to_nhwc_kernel(T* nhwc, const float* nchw, int64_t N, int64_t C, int64_t HW) {
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= N * C * HW) return;
    const int64_t c = i % C, p = (i / C) % HW, n = i / (C * HW);
    nhwc[i] = from_f32<T>(nchw[(n * C + c) * HW + p]);
}
}  // namespace

void nchw_to_nhwc(void* nhwc, DType type, const float* nchw, int64_t n, int64_t c, int64_t h, int64_t w,
                  cudaStream_t stream) {
    const int64_t total = n * c * h * w;
    with_element_type(type, [&](auto t) {
        using T = typename decltype(t)::type;
        nchw_to_nhwc_kernel<<<unsigned((total + 255) / 256), 256, 0, stream>>>(static_cast<T*>(nhwc), nchw, n, c, h * w);
    });
    CUDA_CHECK(cudaGetLastError());
}

}  // namespace dn::cuda
