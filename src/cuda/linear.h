// defines: cuda::Linear (the classifier, y = x W^T + b, on cuBLAS, forward and backward)
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace dn::cuda {

// x (N,I), y (N,O) row-major; W (O,I) and b (O) as PyTorch's nn.Linear. In full fp32: PyTorch's
// default keeps TF32 off for matrix products (torch.backends.cuda.matmul.allow_tf32 = False).
class Linear {
public:
    Linear(cublasHandle_t handle, int64_t batch, int64_t in_features, int64_t out_features);

    void forward(float* y, const float* x, const float* weight, const float* bias, cudaStream_t stream) const;
    // dx (N,I), dweight (O,I), dbias (O): all assigned.
    void backward(float* dx, float* dweight, float* dbias, const float* dy, const float* x, const float* weight,
                  cudaStream_t stream) const;

private:
    cublasHandle_t handle_;
    int batch_, in_, out_;
};

}  // namespace dn::cuda
