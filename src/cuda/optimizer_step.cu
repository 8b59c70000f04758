#include "cuda/optimizer_step.h"

#include "cuda/cuda_check.h"

#include <vector>

namespace dn::cuda {

namespace {
__global__ void adam_kernel(float* values, float* m, float* v, const float* grads, int64_t n, AdamStepScalars s) {
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < n) adam_element(values, m, v, nullptr, grads, i, s);
}

__global__ void sgd_kernel(float* values, float* buf, const float* grads, int64_t n, SgdStepScalars s) {
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < n) sgd_element(values, buf, grads, i, s);
}

__global__ void blend_kernel(float* a, const float* p, int64_t n, float keep, float take) {
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < n) a[i] = __fadd_rn(__fmul_rn(keep, a[i]), __fmul_rn(take, p[i]));  // no FMA contraction
}

constexpr int kNormThreads = 256;

// One block per parameter: its gradient's squares summed in double, the root as a float.
__global__ void parameter_norms(float* norms, const float* grads, const int64_t* ranges) {
    __shared__ double partial[kNormThreads];
    const int64_t offset = ranges[2 * blockIdx.x], count = ranges[2 * blockIdx.x + 1];
    double s = 0.0;
    for (int64_t i = threadIdx.x; i < count; i += blockDim.x) {
        const double g = grads[offset + i];
        s += g * g;
    }
    partial[threadIdx.x] = s;
    __syncthreads();
    for (int half = kNormThreads / 2; half > 0; half /= 2) {
        if (int(threadIdx.x) < half) partial[threadIdx.x] += partial[threadIdx.x + half];
        __syncthreads();
    }
    if (threadIdx.x == 0) norms[blockIdx.x] = float(sqrt(partial[0]));
}

// One thread, in parameter order as the CPU: norms[tensors] = the total, norms[tensors + 1] the scale.
__global__ void total_norm(float* norms, int64_t tensors, float max_norm) {
    double sum_of_squares = 0.0;
    for (int64_t t = 0; t < tensors; ++t) sum_of_squares += double(norms[t]) * double(norms[t]);
    const float total = float(sqrt(sum_of_squares));
    norms[tensors] = total;
    norms[tensors + 1] = max_norm / (total + 1e-6f);
}

__global__ void scale_gradients(float* grads, int64_t n, const float* scale) {
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    const float c = *scale;
    if (i < n && c < 1.0f) grads[i] *= c;
}

unsigned blocks_of(int64_t n) { return unsigned((n + 255) / 256); }
}  // namespace

void adam_step(float* values, float* exp_avg, float* exp_avg_sq, const float* grads, int64_t n,
               const AdamStepScalars& s, cudaStream_t stream) {
    if (n == 0) return;
    adam_kernel<<<blocks_of(n), 256, 0, stream>>>(values, exp_avg, exp_avg_sq, grads, n, s);
    CUDA_CHECK(cudaGetLastError());
}

void sgd_step(float* values, float* momentum_buffer, const float* grads, int64_t n, const SgdStepScalars& s,
              cudaStream_t stream) {
    if (n == 0) return;
    sgd_kernel<<<blocks_of(n), 256, 0, stream>>>(values, momentum_buffer, grads, n, s);
    CUDA_CHECK(cudaGetLastError());
}

void blend_average(float* average, const float* model, int64_t n, float keep, float take, cudaStream_t stream) {
    if (n == 0) return;
    blend_kernel<<<blocks_of(n), 256, 0, stream>>>(average, model, n, keep, take);
    CUDA_CHECK(cudaGetLastError());
}

GradientNorm::GradientNorm(const Parameters& params) : count_(params.count()) {
    std::vector<int64_t> ranges;
    for (const TensorEntry& e : params.entries())
        if (e.role == TensorRole::parameter) ranges.insert(ranges.end(), {e.offset, e.numel()});
    tensors_ = int64_t(ranges.size() / 2);
    ranges_ = DeviceBuffer(ranges.size() * sizeof(int64_t));
    norms_ = DeviceBuffer(size_t(tensors_ + 2) * sizeof(float));
    CUDA_CHECK(cudaMemcpy(ranges_.bytes(), ranges.data(), ranges_.size(), cudaMemcpyHostToDevice));
}

void GradientNorm::clip(float* grads, double max_norm, cudaStream_t stream) {
    const auto* ranges = reinterpret_cast<const int64_t*>(ranges_.bytes());
    parameter_norms<<<unsigned(tensors_), kNormThreads, 0, stream>>>(norms_.floats(), grads, ranges);
    total_norm<<<1, 1, 0, stream>>>(norms_.floats(), tensors_, float(max_norm));
    scale_gradients<<<blocks_of(count_), 256, 0, stream>>>(grads, count_, norms_.floats() + tensors_ + 1);
    CUDA_CHECK(cudaGetLastError());
}

double GradientNorm::last_norm(cudaStream_t stream) const {
    float norm = 0.0f;
    CUDA_CHECK(cudaMemcpyAsync(&norm, norms_.floats() + tensors_, sizeof norm, cudaMemcpyDeviceToHost, stream));
    CUDA_CHECK(cudaStreamSynchronize(stream));
    return double(norm);
}

}  // namespace dn::cuda
