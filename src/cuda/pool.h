// defines: cuda::Pool2d (cuDNN max and average pooling over dense NHWC floats: the stem's 3x3/2
//          max pool and the transitions' 2x2/2 average pool)
#pragma once
#include "ops/pool_shape.h"

#include <cudnn.h>

namespace dn::cuda {

class Pool2d {
public:
    Pool2d(cudnnHandle_t handle, const PoolShape& shape, PoolKind kind);
    ~Pool2d();
    Pool2d(const Pool2d&) = delete;
    Pool2d& operator=(const Pool2d&) = delete;

    const PoolShape& shape() const { return shape_; }
    void forward(const float* x, float* y) const;  // y assigned
    // dx assigned. Max pooling finds its arg-max again from x and y (cuDNN keeps no workspace).
    void backward(const float* dy, const float* x, const float* y, float* dx) const;

private:
    cudnnHandle_t handle_;
    PoolShape shape_;
    cudnnPoolingDescriptor_t pool_desc_ = nullptr;
    cudnnTensorDescriptor_t x_desc_ = nullptr, y_desc_ = nullptr;
};

}  // namespace dn::cuda
