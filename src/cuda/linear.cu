#include "cuda/linear.h"

#include "cuda/cudnn_check.h"

#include <stdexcept>

namespace dn::cuda {

namespace {
__global__ void add_bias(float* y, const float* bias, int64_t N, int64_t O) {
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < N * O) y[i] += bias[i % O];
}

// dbias[o] = sum over the batch of dy[n][o], in batch order (deterministic).
__global__ void sum_batch(float* dbias, const float* dy, int64_t N, int64_t O) {
    const int64_t o = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (o >= O) return;
    float s = 0.0f;
    for (int64_t n = 0; n < N; ++n) s += dy[n * O + o];
    dbias[o] = s;
}
}  // namespace

Linear::Linear(cublasHandle_t handle, int64_t batch, int64_t in_features, int64_t out_features)
    : handle_(handle), batch_(int(batch)), in_(int(in_features)), out_(int(out_features)) {
    if (batch <= 0 || in_features <= 0 || out_features <= 0) throw std::invalid_argument("cuda Linear: empty shape");
}

// Row-major matrices are cuBLAS's column-major transposes: y^T (O,N) = W (O,I) x^T (I,N), where
// the row-major W is the column-major (I,O) matrix, transposed by the call.
void Linear::forward(float* y, const float* x, const float* weight, const float* bias, cudaStream_t stream) const {
    const float one = 1.0f, zero = 0.0f;
    CUBLAS_CHECK(cublasSetStream(handle_, stream));
    CUBLAS_CHECK(cublasSgemm(handle_, CUBLAS_OP_T, CUBLAS_OP_N, out_, batch_, in_, &one, weight, in_, x, in_, &zero, y,
                             out_));
    const int64_t n = int64_t(batch_) * out_;
    add_bias<<<unsigned((n + 255) / 256), 256, 0, stream>>>(y, bias, batch_, out_);
    CUDA_CHECK(cudaGetLastError());
}

void Linear::backward(float* dx, float* dweight, float* dbias, const float* dy, const float* x, const float* weight,
                      cudaStream_t stream) const {
    const float one = 1.0f, zero = 0.0f;
    CUBLAS_CHECK(cublasSetStream(handle_, stream));
    // dx^T (I,N) = W^T (I,O) dy^T (O,N)
    CUBLAS_CHECK(cublasSgemm(handle_, CUBLAS_OP_N, CUBLAS_OP_N, in_, batch_, out_, &one, weight, in_, dy, out_, &zero,
                             dx, in_));
    // dW^T (I,O) = x^T (I,N) dy (N,O)
    CUBLAS_CHECK(cublasSgemm(handle_, CUBLAS_OP_N, CUBLAS_OP_T, in_, out_, batch_, &one, x, in_, dy, out_, &zero,
                             dweight, in_));
    sum_batch<<<unsigned((out_ + 255) / 256), 256, 0, stream>>>(dbias, dy, batch_, out_);
    CUDA_CHECK(cudaGetLastError());
}

}  // namespace dn::cuda
