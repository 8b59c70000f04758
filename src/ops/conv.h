// defines: ConvKernel, ConvKernels, covers_whole_map, default_conv_kernels,
//          Conv2d (oneDNN convolution: forward, backward-data, backward-weights)
#pragma once
#include "ops/conv_shape.h"
#include "ops/dnnl_context.h"
#include "ops/winograd_matmul.h"
#include "tensor/feature_map.h"

#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

namespace dn {

// Which kernel computes a pass. A pointwise (1x1, stride 1) convolution over NHWC is the
// matrix product (N*H*W x I) * (I x O), so oneDNN's matmul can run it on the OIHW weights as they
// are, with no weight reorder; the convolution primitive wants its own blocked weight layout.
// winograd is the convolution primitive with oneDNN's Winograd algorithm F(4x4, 3x3), which
// computes a 3x3 convolution with fewer multiplications: fp32 only, and only on oneDNN's blocked
// activation layout, so its operands are staged in a buffer the caller gives (set_staging) and
// reordered from and to NHWC around each pass. It runs all three passes or none.
// whole_map is for maps so small that every output pixel's window covers the whole input map (a
// 3x3 convolution with padding 1 on a 2x2 or 1x1 map, as DenseNet-121's last blocks have at 32x32):
// the convolution is then one matrix product of the (N, H*W*I) images with the (H*W*I, H*W*O)
// matrix that lays each pixel pair's kernel tap out as a block (unfolded in load_weights, its
// gradient folded back into OIHW). The direct kernels spend most of their time there on padding
// and threads with little to do. It runs all three passes or none.
// winograd_matmul is the same F(4x4, 3x3) algorithm with the engine's own tile transforms and
// oneDNN's batched matmul for the products (ops/winograd_matmul.h), for CPUs where oneDNN has no
// Winograd kernel (AVX2): fp32 on NHWC, without an epilogue, for any of the passes but the weight
// gradient without the forward; it stages its transformed tiles like winograd.
enum class ConvKernel { convolution, matmul, winograd, whole_map, winograd_matmul };

// Whether every output pixel's window of `shape` covers its whole input map (whole_map's condition).
bool covers_whole_map(const ConvShape& shape);

struct ConvKernels {
    ConvKernel forward = ConvKernel::convolution;
    ConvKernel backward_data = ConvKernel::convolution;
    ConvKernel backward_weights = ConvKernel::convolution;
};

// The faster kernel for each pass of `shape`, from measurements on DenseNet's shapes.
ConvKernels default_conv_kernels(const ConvShape& shape, DType type, Pass pass);
// Whether `shape`, with its default kernels, can run on nchw16c activations: only the convolution
// primitive runs there (in each pass the network runs), with channel counts that are multiples of 16.
bool can_run_blocked(const ConvShape& shape, DType type, Pass pass);
// The faster activation layout for `shape` with its default kernels, where its caller can give
// either (the engine's own kernels read and write both; tensor/feature_map.h).
Layout default_activation_layout(const ConvShape& shape, DType type, Pass pass);

// What an inference forward does to its output before writing it: nothing, or relu(y + bias), the
// epilogue that folds the eval-mode BatchNorm+ReLU following a convolution into it, as ONNX
// Runtime and OpenVINO fold theirs. The BatchNorm's per-channel scale goes into the weights as
// they are reordered (load_weights with a scale), its shift into the bias; the folded values
// differ from PyTorch's conv-then-norm only in rounding.
enum class ConvEpilogue { none, bias_relu };

// Activations are dense NHWC (or nchw16c, the activations' layout given), all of `type`: src, dst
// and their gradients. With bf16, oneDNN's
// AVX512-BF16 kernels multiply bf16 and accumulate in f32. Weights and their gradient are
// PyTorch's OIHW floats. Where a pass runs the convolution primitive, oneDNN picks its own weight
// layout (format_tag::any), so the weights are reordered into it once per step, after the
// optimizer has moved them (the same reorder converts them to bf16), and the weight gradient,
// f32 in either precision, is reordered back. Matmul passes read and write OIHW directly (in
// bf16, from a bf16 copy made in load_weights).
class Conv2d {
public:
    Conv2d(DnnlContext& ctx, const ConvShape& shape, Pass pass, const char* name, DType type = DType::f32);
    // `kernels` other than the default: for tests that compare the two. Matmul needs a pointwise shape.
    // An epilogue other than none needs Pass::inference.
    Conv2d(DnnlContext& ctx, const ConvShape& shape, Pass pass, const char* name, DType type, ConvKernels kernels,
           ConvEpilogue epilogue = ConvEpilogue::none);
    Conv2d(DnnlContext& ctx, const ConvShape& shape, Pass pass, const char* name, DType type, ConvEpilogue epilogue);
    // With the default kernels, and src, dst and their gradients in `activations` (nchw16c: every
    // pass on the convolution primitive, which runs 1x1 convolutions 5-45% faster on it than on
    // NHWC; see default_activation_layout). An inference convolution may have an epilogue too.
    Conv2d(DnnlContext& ctx, const ConvShape& shape, Pass pass, const char* name, DType type, Layout activations,
           ConvEpilogue epilogue = ConvEpilogue::none);

    const ConvShape& shape() const { return shape_; }
    DType type() const { return type_; }
    Layout activations() const { return activations_; }
    ConvEpilogue epilogue() const { return epilogue_; }

    void load_weights(const float* weights_oihw);  // (O,I,K,K); call after every weight update
    // With the bias_relu epilogue: forward computes relu(conv(x, scale (O) * weights) + bias (O)).
    // The scaled weights are made here; the bias is read at each forward and must stay valid.
    void load_weights(const float* weights_oihw, const float* output_channel_scale, const float* bias);
    void forward(const void* src, void* dst);      // src (N,H,W,I) -> dst (N,OH,OW,O)
    void backward_data(const void* ddst, void* dsrc);
    void backward_weights(const void* src, const void* ddst, float* dweights_oihw);  // assigns
    // Both gradients: backward_weights then backward_data, with ddst staged once under Winograd.
    void backward(const void* src, const void* ddst, void* dsrc, float* dweights_oihw);

    // The bytes a Winograd convolution stages its blocked src and dst in (winograd_matmul: its
    // transformed tiles; 0 for the other kernels), and where: the buffer is only used during a
    // call, so convolutions can share one.
    size_t staging_bytes() const;
    // Whether it can run in `bytes` of staging: winograd_matmul can, down to a point, by taking its
    // tiles in groups (WinogradMatmul::fit_staging), and from then on needs no more.
    bool fit_staging(size_t bytes);
    void set_staging(void* buffer);

    // Under Winograd, src and its gradient can be given in the kernel's own layout, nchw16c
    // (Layout in tensor/feature_map.h), where that is the layout oneDNN chose: their layout changes,
    // the larger part of the staging's cost, are then not needed. After take_blocked_src, forward
    // and backward_weights read src, and backward_data and backward write dsrc, in nchw16c.
    bool can_take_blocked_src() const;
    void take_blocked_src();
    bool takes_blocked_src() const { return src_blocked_; }

private:
    void build(const char* name);  // checks the kernels, then builds their primitives
    void build_convolution(const char* name);
    void build_matmul(const char* name);
    bool uses(ConvKernel kernel) const;
    int passes_on(ConvKernel kernel) const;  // of the three, whatever the pass (Winograd, whole_map: all or none)
    dnnl::primitive_attr forward_attr() const;     // the epilogue's post-op
    dnnl::primitive_attr weight_scale_attr() const;  // a weight reorder's per-output-channel scale
    void reorder_weights(dnnl::reorder& r, dnnl::memory& to);
    bool winograd() const { return kernels_.forward == ConvKernel::winograd; }
    bool whole_map() const { return kernels_.forward == ConvKernel::whole_map; }
    // whole_map's (H*W*O, H*W*I) matrix from the OIHW weights, and the OIHW gradient from its own.
    void unfold_weights(const float* weights_oihw);
    void fold_weight_gradient(float* dweights_oihw);
    // Winograd's layout changes: the NHWC src_/dst_ into the staged (blocked) operands and back.
    void stage(dnnl::reorder& r, dnnl::memory& from, dnnl::memory& to);
    size_t staged_dst_offset() const;
    void stage_src(void* caller_src, dnnl::reorder* from);
    void run_backward_data(void* dsrc);
    void run_backward_weights(float* dweights_oihw);

    DnnlContext& ctx_;
    ConvShape shape_;
    DType type_;
    Pass pass_;
    ConvKernels kernels_;
    ConvEpilogue epilogue_ = ConvEpilogue::none;
    Layout activations_ = Layout::nhwc;
    dnnl::memory scale_, bias_;  // (O) f32 each, the epilogue's

    // The convolution primitive's passes. src_ and dst_ are the caller's operands (or their
    // gradients); the primitives read and write staged_src_ and staged_dst_, which are src_ and
    // dst_ themselves except under Winograd.
    dnnl::memory src_, dst_, user_weights_, fwd_weights_, bwd_data_weights_, diff_weights_, user_diff_weights_;
    dnnl::memory staged_src_, staged_dst_;
    dnnl::reorder to_staged_src_, to_staged_dst_, from_staged_src_, from_staged_dst_;
    bool staging_set_ = false;
    bool src_blocked_ = false;  // take_blocked_src: staged_src_ is the caller's src or dsrc
    dnnl::convolution_forward fwd_;
    dnnl::convolution_backward_data bwd_data_;
    dnnl::convolution_backward_weights bwd_weights_;
    dnnl::reorder to_fwd_weights_, to_bwd_data_weights_, from_diff_weights_;
    // Built once: they hold the memory handles above, whose data pointers each call sets.
    std::unordered_map<int, dnnl::memory> fwd_args_, bwd_data_args_, bwd_weights_args_;
    bool bwd_data_shares_weights_ = true;

    // The matmul passes: (P,I) and (P,O) are the NHWC activations, P = N*H*W; under whole_map,
    // P = N, and I and O are H*W times the channels (each image's map is one row).
    dnnl::memory mm_src_, mm_dst_;            // (P,I), (P,O)
    dnnl::memory mm_weights_transposed_;      // (I,O): the (O,I) weights read column-major
    dnnl::memory mm_weights_, mm_ddst_transposed_, mm_dweights_;  // (O,I); (O,P); (O,I) f32
    // (O,I,1,1) copy in the operands' type, where matmul can't read the f32 weights as they are:
    // in bf16, or scaled for an epilogue. Under whole_map in bf16, the unfolded matrix.
    dnnl::memory weight_copy_;
    dnnl::reorder to_weight_copy_;
    // whole_map: the unfolded f32 weights (H*W*O, H*W*I) (in bf16, weight_copy_ holds them), their
    // f32 gradient, and the kernel tap of each (output pixel, input pixel) pair.
    dnnl::memory unfolded_, unfolded_grad_;
    std::vector<int64_t> tap_of_;
    dnnl::matmul mm_fwd_, mm_bwd_data_, mm_bwd_weights_;
    std::unordered_map<int, dnnl::memory> mm_fwd_args_, mm_bwd_data_args_, mm_bwd_weights_args_;

    // winograd_matmul's passes: the forward, and the input gradient as the forward of the
    // convolution with swapped channels and turned kernels, whose weights it transforms from there.
    std::unique_ptr<WinogradMatmul> winograd_forward_, winograd_backward_data_;
    std::vector<float> turned_weights_;
};

}  // namespace dn
