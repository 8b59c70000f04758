#include "cuda/global_pool.h"

#include "cuda/cuda_check.h"
#include "cuda/launch.h"

#include <stdexcept>

namespace dn::cuda {

namespace {
__global__ void pool_forward(float* y, const float* x, int64_t ld, int64_t N, int64_t HW, int64_t C) {
    const int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x, n = blockIdx.y;
    if (c >= C) return;
    float sum = 0.0f;
    for (int64_t p = n * HW; p < (n + 1) * HW; ++p) sum += x[p * ld + c];
    y[n * C + c] = sum / float(HW);
}

__global__ void pool_backward(float* dx, int64_t ld, const float* dy, int64_t P, int64_t HW, int64_t C, float inv) {
    const int64_t c = int64_t(blockIdx.x) * kChannelTile + threadIdx.x;
    if (c >= C) return;
    for (int64_t p = int64_t(blockIdx.y) * kRowTile + threadIdx.y; p < P; p += int64_t(gridDim.y) * kRowTile)
        dx[p * ld + c] = dy[(p / HW) * C + c] * inv;
}
}  // namespace

void global_avg_pool_forward(float* y, const FeatureMap& x, cudaStream_t stream) {
    if (x.type != DType::f32) throw std::logic_error("cuda global_avg_pool: f32 only");
    if (x.n > 65535) throw std::invalid_argument("cuda global_avg_pool: batch above 65535");
    pool_forward<<<dim3(unsigned((x.c + 127) / 128), unsigned(x.n)), 128, 0, stream>>>(
        y, static_cast<const float*>(x.data), x.ld, x.n, x.h * x.w, x.c);
    CUDA_CHECK(cudaGetLastError());
}

void global_avg_pool_backward(const FeatureMap& dx, const float* dy, cudaStream_t stream) {
    if (dx.type != DType::f32) throw std::logic_error("cuda global_avg_pool: f32 only");
    const int64_t HW = dx.h * dx.w;
    pool_backward<<<channel_grid(dx.pixels(), dx.c), channel_block(), 0, stream>>>(
        static_cast<float*>(dx.data), dx.ld, dy, dx.pixels(), HW, dx.c, 1.0f / float(HW));
    CUDA_CHECK(cudaGetLastError());
}

}  // namespace dn::cuda
