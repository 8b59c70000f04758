// defines: cuda::Pool2d (cuDNN max and average pooling over dense NHWC f32 or bf16: the stem's
//          3x3/2 max pool and the transitions' 2x2/2 average pool)
#pragma once
#include "ops/pool_shape.h"
#include "tensor/dtype.h"

#include <cudnn.h>

namespace dn::cuda {

class Pool2d {
public:
    Pool2d(cudnnHandle_t handle, const PoolShape& shape, PoolKind kind, DType type = DType::f32);
    ~Pool2d();
    Pool2d(const Pool2d&) = delete;
    Pool2d& operator=(const Pool2d&) = delete;

    const PoolShape& shape() const { return shape_; }
    // All of the pool's type (cuDNN computes in f32).
    void forward(const void* x, void* y) const;  // y assigned
    // dx assigned. Max pooling finds its arg-max again from x and y (cuDNN keeps no workspace).
    void backward(const void* dy, const void* x, const void* y, void* dx) const;

private:
    cudnnHandle_t handle_;
    PoolShape shape_;
    cudnnPoolingDescriptor_t pool_desc_ = nullptr;
    cudnnTensorDescriptor_t x_desc_ = nullptr, y_desc_ = nullptr;
};

}  // namespace dn::cuda
