// defines: cuda::Conv2d (cuDNN convolution over dense NHWC: forward, backward-data,
//          backward-weights, with algorithms picked once per shape), cuda::oihw_to_ohwi,
//          cuda::ohwi_to_oihw
#pragma once
#include "cuda/tf32.h"
#include "ops/conv_shape.h"
#include "tensor/dtype.h"

#include <cuda_runtime.h>
#include <cudnn.h>

#include <cstddef>

namespace dn::cuda {

// Activations are dense NHWC floats; weights are OHWI (channels-last, as PyTorch's channels_last
// keeps them; the parameter buffer stays OIHW, and oihw_to_ohwi / ohwi_to_oihw convert).
// Algorithms come from cuDNN's heuristics, as PyTorch picks them with cudnn.benchmark off, once,
// and the caller provides workspace_bytes() of scratch (part of the plan).
class Conv2d {
public:
    // type: the activations' and the weights' (bf16: bf16 operands on tensor cores, f32
    // accumulation, as PyTorch's autocast runs a convolution; tf32 then does not matter).
    Conv2d(cudnnHandle_t handle, const ConvShape& shape, Tf32 tf32, DType type = DType::f32);
    ~Conv2d();
    Conv2d(const Conv2d&) = delete;
    Conv2d& operator=(const Conv2d&) = delete;

    const ConvShape& shape() const { return shape_; }
    DType type() const { return type_; }
    size_t workspace_bytes() const { return workspace_bytes_; }

    // Every operand of the convolution's type; dw too (bf16 in bf16, as PyTorch's weight gradient
    // is the bf16 copy's before the cast's backward makes it f32: ohwi_to_oihw does that here).
    void forward(const void* x, const void* w, void* y, void* workspace) const;          // y assigned
    void backward_data(const void* dy, const void* w, void* dx, void* workspace) const;  // dx assigned
    void backward_weights(const void* x, const void* dy, void* dw, void* workspace) const;  // dw assigned

private:
    cudnnHandle_t handle_;
    ConvShape shape_;
    DType type_;
    cudnnTensorDescriptor_t x_desc_ = nullptr, y_desc_ = nullptr;
    cudnnFilterDescriptor_t w_desc_ = nullptr;
    cudnnConvolutionDescriptor_t conv_desc_ = nullptr;
    cudnnConvolutionFwdAlgo_t forward_algo_{};
    cudnnConvolutionBwdDataAlgo_t backward_data_algo_{};
    cudnnConvolutionBwdFilterAlgo_t backward_weights_algo_{};
    // Each pass's math type, set on conv_desc_ before it runs (a host-side setting, no GPU work).
    cudnnMathType_t forward_math_{}, backward_data_math_{}, backward_weights_math_{};
    size_t workspace_bytes_ = 0;
};

// Weight layouts, device to device: the f32 parameters (O,I,K,K) into the convolution's (O,K,K,I)
// of `type` (rounded to nearest even for bf16), and a weight gradient back.
void oihw_to_ohwi(void* ohwi, DType type, const float* oihw, const ConvShape& shape, cudaStream_t stream);
void ohwi_to_oihw(float* oihw, const void* ohwi, DType type, const ConvShape& shape, cudaStream_t stream);

}  // namespace dn::cuda
