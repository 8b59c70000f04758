// defines: Linear (oneDNN matmul: y = x W^T + b, and its backward)
#pragma once
#include "ops/dnnl_context.h"

#include <unordered_map>

namespace dn {

// x (N,I), W (O,I) as nn.Linear stores it, b (O), y (N,O). Plain row-major everywhere: the
// transposes are strides, so no reorder is needed.
class Linear {
public:
    Linear(DnnlContext& ctx, int64_t batch, int64_t in_features, int64_t out_features, const char* name);

    void forward(float* y, const float* x, const float* weight, const float* bias);
    // Assigns dx, dweight and dbias; pass dx = nullptr when the input needs no gradient.
    void backward(float* dx, float* dweight, float* dbias, const float* dy, const float* x, const float* weight);

private:
    DnnlContext& ctx_;
    int64_t batch_, in_, out_;
    dnnl::memory x_, w_t_, b_, y_, dy_, w_, dx_, dy_t_, dw_;
    dnnl::matmul fwd_, bwd_data_, bwd_weights_;
    // Built once: they hold the memory handles above, whose data pointers each call sets.
    std::unordered_map<int, dnnl::memory> fwd_args_, bwd_data_args_, bwd_weights_args_;
};

}  // namespace dn
