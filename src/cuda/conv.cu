#include "cuda/conv.h"

#include "cuda/cudnn_check.h"
#include "cuda/element.cuh"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace dn::cuda {

namespace {
// The most workspace one convolution pass may ask for. cuDNN's heuristics put FFT algorithms
// first for some shapes, with gigabytes of scratch at batch 256. PyTorch falls back from such a
// choice when its allocation fails; this engine plans its one workspace up front instead.
constexpr size_t kWorkspaceCap = size_t(512) << 20;

// A pass's algorithm and the math type it runs under.
template <class Algo>
struct Choice {
    Algo algo;
    cudnnMathType_t math;
};

// cudnnGet*_v7 lists algorithms best first, each with the math type it was rated under; the
// first that cuDNN can run here within the workspace cap. It runs under that math type, as
// PyTorch runs it, except where TF32 is off: then always plain FMA (for floats, the default and
// tensor-op math types may use TF32), as PyTorch overrides it.
template <class Perf>
auto first_usable(const Perf* perf, int count, Tf32 tf32, const char* pass) {
    for (int i = 0; i < count; ++i) {
        const Perf& p = perf[i];
        if (p.status != CUDNN_STATUS_SUCCESS || p.memory > kWorkspaceCap) continue;
        return Choice<decltype(p.algo)>{p.algo, tf32 == Tf32::off ? CUDNN_FMA_MATH : p.mathType};
    }
    throw std::runtime_error(std::string("cuDNN has no algorithm for this convolution's ") + pass +
                             " within " + std::to_string(kWorkspaceCap >> 20) + " MiB of workspace");
}

// One thread per weight; i indexes OIHW: o, c, k (the spatial position).
__device__ inline int64_t ohwi_index(int64_t i, int64_t I, int64_t KK) {
    const int64_t o = i / (I * KK), c = (i / KK) % I, k = i % KK;
    return (o * KK + k) * I + c;
}

template <class T>
__global__ void to_ohwi_kernel(T* ohwi, const float* oihw, int64_t n, int64_t I, int64_t KK) {
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < n) ohwi[ohwi_index(i, I, KK)] = from_f32<T>(oihw[i]);
}

template <class T>
__global__ void to_oihw_kernel(float* oihw, const T* ohwi, int64_t n, int64_t I, int64_t KK) {
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < n) oihw[i] = to_f32(ohwi[ohwi_index(i, I, KK)]);
}
}  // namespace

Conv2d::Conv2d(cudnnHandle_t handle, const ConvShape& s, Tf32 tf32, DType type)
    : handle_(handle), shape_(s), type_(type) {
    const cudnnDataType_t data = type == DType::bf16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT;
    // TF32 concerns f32 operands only; bf16 runs on tensor cores under any setting.
    if (type == DType::bf16) tf32 = Tf32::allowed;
    CUDNN_CHECK(cudnnCreateTensorDescriptor(&x_desc_));
    CUDNN_CHECK(cudnnCreateTensorDescriptor(&y_desc_));
    CUDNN_CHECK(cudnnCreateFilterDescriptor(&w_desc_));
    CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&conv_desc_));
    CUDNN_CHECK(cudnnSetTensor4dDescriptor(x_desc_, CUDNN_TENSOR_NHWC, data, int(s.batch),
                                           int(s.in_channels), int(s.in_h), int(s.in_w)));
    CUDNN_CHECK(cudnnSetTensor4dDescriptor(y_desc_, CUDNN_TENSOR_NHWC, data, int(s.batch),
                                           int(s.out_channels), int(s.out_h()), int(s.out_w())));
    CUDNN_CHECK(cudnnSetFilter4dDescriptor(w_desc_, data, CUDNN_TENSOR_NHWC, int(s.out_channels),
                                           int(s.in_channels), int(s.kernel), int(s.kernel)));
    // PyTorch's convolution is cross-correlation, accumulated in f32 in either type.
    CUDNN_CHECK(cudnnSetConvolution2dDescriptor(conv_desc_, int(s.pad), int(s.pad), int(s.stride), int(s.stride), 1, 1,
                                                CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    // As PyTorch: bf16 asks for tensor cores; for floats, TF32 allowed is cuDNN's default math and
    // off is plain FMA. Each pass then runs under the math type its chosen algorithm was rated
    // under, as PyTorch sets it.
    const cudnnMathType_t math = type == DType::bf16       ? CUDNN_TENSOR_OP_MATH
                                 : tf32 == Tf32::allowed ? CUDNN_DEFAULT_MATH
                                                         : CUDNN_FMA_MATH;
    CUDNN_CHECK(cudnnSetConvolutionMathType(conv_desc_, math));

    int count = 0;
    cudnnConvolutionFwdAlgoPerf_t fwd[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(handle, x_desc_, w_desc_, conv_desc_, y_desc_,
                                                       CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &count, fwd));
    const auto forward = first_usable(fwd, count, tf32, "forward");
    forward_algo_ = forward.algo, forward_math_ = forward.math;
    cudnnConvolutionBwdDataAlgoPerf_t bwd_data[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(handle, w_desc_, y_desc_, conv_desc_, x_desc_,
                                                            CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &count, bwd_data));
    const auto backward_data = first_usable(bwd_data, count, tf32, "backward-data");
    backward_data_algo_ = backward_data.algo, backward_data_math_ = backward_data.math;
    cudnnConvolutionBwdFilterAlgoPerf_t bwd_w[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(handle, x_desc_, y_desc_, conv_desc_, w_desc_,
                                                              CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &count, bwd_w));
    const auto backward_weights = first_usable(bwd_w, count, tf32, "backward-weights");
    backward_weights_algo_ = backward_weights.algo, backward_weights_math_ = backward_weights.math;

    size_t bytes = 0;
    CUDNN_CHECK(cudnnSetConvolutionMathType(conv_desc_, forward_math_));
    CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(handle, x_desc_, w_desc_, conv_desc_, y_desc_, forward_algo_,
                                                        &bytes));
    workspace_bytes_ = bytes;
    CUDNN_CHECK(cudnnSetConvolutionMathType(conv_desc_, backward_data_math_));
    CUDNN_CHECK(cudnnGetConvolutionBackwardDataWorkspaceSize(handle, w_desc_, y_desc_, conv_desc_, x_desc_,
                                                             backward_data_algo_, &bytes));
    workspace_bytes_ = std::max(workspace_bytes_, bytes);
    CUDNN_CHECK(cudnnSetConvolutionMathType(conv_desc_, backward_weights_math_));
    CUDNN_CHECK(cudnnGetConvolutionBackwardFilterWorkspaceSize(handle, x_desc_, y_desc_, conv_desc_, w_desc_,
                                                               backward_weights_algo_, &bytes));
    workspace_bytes_ = std::max(workspace_bytes_, bytes);
}

Conv2d::~Conv2d() {
    cudnnDestroyConvolutionDescriptor(conv_desc_);
    cudnnDestroyFilterDescriptor(w_desc_);
    cudnnDestroyTensorDescriptor(y_desc_);
    cudnnDestroyTensorDescriptor(x_desc_);
}

void Conv2d::forward(const void* x, const void* w, void* y, void* workspace) const {
    const float one = 1.0f, zero = 0.0f;
    CUDNN_CHECK(cudnnSetConvolutionMathType(conv_desc_, forward_math_));
    CUDNN_CHECK(cudnnConvolutionForward(handle_, &one, x_desc_, x, w_desc_, w, conv_desc_, forward_algo_, workspace,
                                        workspace_bytes_, &zero, y_desc_, y));
}

void Conv2d::backward_data(const void* dy, const void* w, void* dx, void* workspace) const {
    const float one = 1.0f, zero = 0.0f;
    CUDNN_CHECK(cudnnSetConvolutionMathType(conv_desc_, backward_data_math_));
    CUDNN_CHECK(cudnnConvolutionBackwardData(handle_, &one, w_desc_, w, y_desc_, dy, conv_desc_, backward_data_algo_,
                                             workspace, workspace_bytes_, &zero, x_desc_, dx));
}

void Conv2d::backward_weights(const void* x, const void* dy, void* dw, void* workspace) const {
    const float one = 1.0f, zero = 0.0f;
    CUDNN_CHECK(cudnnSetConvolutionMathType(conv_desc_, backward_weights_math_));
    CUDNN_CHECK(cudnnConvolutionBackwardFilter(handle_, &one, x_desc_, x, y_desc_, dy, conv_desc_,
                                               backward_weights_algo_, workspace, workspace_bytes_, &zero, w_desc_,
                                               dw));
}

void oihw_to_ohwi(void* ohwi, DType type, const float* oihw, const ConvShape& s, cudaStream_t stream) {
    const int64_t n = s.weight_count();
    with_element_type(type, [&](auto t) {
        using T = typename decltype(t)::type;
        to_ohwi_kernel<<<unsigned((n + 255) / 256), 256, 0, stream>>>(static_cast<T*>(ohwi), oihw, n, s.in_channels,
                                                                      s.kernel * s.kernel);
    });
    CUDA_CHECK(cudaGetLastError());
}

void ohwi_to_oihw(float* oihw, const void* ohwi, DType type, const ConvShape& s, cudaStream_t stream) {
    const int64_t n = s.weight_count();
    with_element_type(type, [&](auto t) {
        using T = typename decltype(t)::type;
        to_oihw_kernel<<<unsigned((n + 255) / 256), 256, 0, stream>>>(oihw, static_cast<const T*>(ohwi), n,
                                                                      s.in_channels, s.kernel * s.kernel);
    });
    CUDA_CHECK(cudaGetLastError());
}

}  // namespace dn::cuda
