// defines: Pool2d (oneDNN max / average pooling), global_avg_pool_forward/_backward
#pragma once
#include "ops/conv.h"
#include "ops/pool_shape.h"
#include "tensor/feature_map.h"

#include <unordered_map>

namespace dn {

// Dense NHWC in and out, all of `type` (a transition's pooling is bf16 in bf16 precision, as its
// convolution's output and its gradient are). Max pooling keeps the arg-max in a workspace that
// the caller owns (it lives in the activation arena), for backward.
class Pool2d {
public:
    Pool2d(DnnlContext& ctx, const PoolShape& shape, PoolKind kind, Pass pass, const char* name,
           DType type = DType::f32);

    const PoolShape& shape() const { return shape_; }
    size_t workspace_bytes() const { return workspace_bytes_; }

    void forward(const void* src, void* dst, void* workspace);
    void backward(const void* ddst, void* dsrc, const void* workspace);  // assigns dsrc

private:
    DnnlContext& ctx_;
    PoolShape shape_;
    DType type_;
    dnnl::memory src_, dst_, workspace_;
    dnnl::pooling_forward fwd_;
    dnnl::pooling_backward bwd_;
    // Built once: they hold the memory handles above, whose data pointers each call sets.
    std::unordered_map<int, dnnl::memory> fwd_args_, bwd_args_;
    size_t workspace_bytes_ = 0;
    bool has_backward_ = false;
};

// Adaptive average pooling to 1x1: y (N,C) = mean over H,W of x (N,H,W,C).
void global_avg_pool_forward(float* y, const FeatureMap& x);
void global_avg_pool_backward(const FeatureMap& dx, const float* dy);  // assigns dx

}  // namespace dn
