#include "cuda/pool.h"

#include "cuda/cudnn_check.h"

namespace dn::cuda {

Pool2d::Pool2d(cudnnHandle_t handle, const PoolShape& s, PoolKind kind, DType type) : handle_(handle), shape_(s) {
    const cudnnDataType_t data = type == DType::bf16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT;
    CUDNN_CHECK(cudnnCreatePoolingDescriptor(&pool_desc_));
    CUDNN_CHECK(cudnnCreateTensorDescriptor(&x_desc_));
    CUDNN_CHECK(cudnnCreateTensorDescriptor(&y_desc_));
    // Deterministic max (ties go to one input, as PyTorch's); average counts the padding, as
    // AvgPool2d's count_include_pad=True (the transitions have none).
    const cudnnPoolingMode_t mode =
        kind == PoolKind::max ? CUDNN_POOLING_MAX_DETERMINISTIC : CUDNN_POOLING_AVERAGE_COUNT_INCLUDE_PADDING;
    CUDNN_CHECK(cudnnSetPooling2dDescriptor(pool_desc_, mode, CUDNN_NOT_PROPAGATE_NAN, int(s.kernel), int(s.kernel),
                                            int(s.pad), int(s.pad), int(s.stride), int(s.stride)));
    CUDNN_CHECK(cudnnSetTensor4dDescriptor(x_desc_, CUDNN_TENSOR_NHWC, data, int(s.batch), int(s.channels),
                                           int(s.in_h), int(s.in_w)));
    CUDNN_CHECK(cudnnSetTensor4dDescriptor(y_desc_, CUDNN_TENSOR_NHWC, data, int(s.batch), int(s.channels),
                                           int(s.out_h()), int(s.out_w())));
}

Pool2d::~Pool2d() {
    cudnnDestroyTensorDescriptor(y_desc_);
    cudnnDestroyTensorDescriptor(x_desc_);
    cudnnDestroyPoolingDescriptor(pool_desc_);
}

void Pool2d::forward(const void* x, void* y) const {
    const float one = 1.0f, zero = 0.0f;
    CUDNN_CHECK(cudnnPoolingForward(handle_, pool_desc_, &one, x_desc_, x, &zero, y_desc_, y));
}

void Pool2d::backward(const void* dy, const void* x, const void* y, void* dx) const {
    const float one = 1.0f, zero = 0.0f;
    CUDNN_CHECK(cudnnPoolingBackward(handle_, pool_desc_, &one, y_desc_, y, y_desc_, dy, x_desc_, x, &zero, x_desc_, dx));
}

}  // namespace dn::cuda
