// defines: ConvShape, Conv2d (oneDNN convolution: forward, backward-data, backward-weights)
#pragma once
#include "ops/dnnl_context.h"

#include <cstdint>
#include <unordered_map>

namespace dn {

struct ConvShape {
    int64_t batch = 0;
    int64_t in_channels = 0, in_h = 0, in_w = 0;
    int64_t out_channels = 0;
    int64_t kernel = 1, stride = 1, pad = 0;

    int64_t out_h() const { return (in_h + 2 * pad - kernel) / stride + 1; }
    int64_t out_w() const { return (in_w + 2 * pad - kernel) / stride + 1; }
    int64_t weight_count() const { return out_channels * in_channels * kernel * kernel; }
    int64_t macs() const { return batch * out_h() * out_w() * out_channels * in_channels * kernel * kernel; }
};

// Activations are dense NHWC, all of `type`: src, dst and their gradients. With bf16, oneDNN's
// AVX512-BF16 kernels multiply bf16 and accumulate in f32. Weights and their gradient are
// PyTorch's OIHW floats. oneDNN picks its own weight layout (format_tag::any), so the weights are
// reordered into it once per step, after the optimizer has moved them (the same reorder converts
// them to bf16), and the weight gradient, f32 in either precision, is reordered back.
class Conv2d {
public:
    Conv2d(DnnlContext& ctx, const ConvShape& shape, Pass pass, const char* name, DType type = DType::f32);

    const ConvShape& shape() const { return shape_; }
    DType type() const { return type_; }

    void load_weights(const float* weights_oihw);  // (O,I,K,K); call after every weight update
    void forward(const void* src, void* dst);      // src (N,H,W,I) -> dst (N,OH,OW,O)
    void backward_data(const void* ddst, void* dsrc);
    void backward_weights(const void* src, const void* ddst, float* dweights_oihw);  // assigns

private:
    DnnlContext& ctx_;
    ConvShape shape_;
    DType type_;
    Pass pass_;
    dnnl::memory src_, dst_, user_weights_, fwd_weights_, bwd_data_weights_, diff_weights_, user_diff_weights_;
    dnnl::convolution_forward fwd_;
    dnnl::convolution_backward_data bwd_data_;
    dnnl::convolution_backward_weights bwd_weights_;
    dnnl::reorder to_fwd_weights_, to_bwd_data_weights_, from_diff_weights_;
    // Built once: they hold the memory handles above, whose data pointers each call sets.
    std::unordered_map<int, dnnl::memory> fwd_args_, bwd_data_args_, bwd_weights_args_;
    bool bwd_data_shares_weights_ = true;
};

}  // namespace dn
