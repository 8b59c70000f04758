#include "cuda/adam.h"

#include "cuda/cuda_check.h"

#include <cmath>
#include <stdexcept>

namespace dn::cuda {

namespace {
__global__ void adam_kernel(float* values, float* m, float* v, const float* grads, int64_t n, AdamScalars s) {
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float g = grads[i];
    if (s.weight_decay != 0.0f) g += s.weight_decay * values[i];
    if (s.shrink != 1.0f) values[i] *= s.shrink;
    const float mi = m[i] * s.beta1 + s.one_minus_beta1 * g;
    const float vi = v[i] * s.beta2 + s.one_minus_beta2 * g * g;
    m[i] = mi;
    v[i] = vi;
    const float denom = sqrtf(vi) / s.correction2_sqrt + s.eps;
    values[i] += -s.step_size * (mi / denom);
}
}  // namespace

AdamScalars adam_scalars(const AdamOptions& o, int64_t step) {
    if (o.amsgrad) throw std::invalid_argument("the GPU engine's Adam has no amsgrad yet");
    const double correction1 = 1.0 - std::pow(o.beta1, double(step));
    const bool decoupled = o.decay == WeightDecay::decoupled;
    return {float(o.lr / correction1),
            float(o.beta1),
            float(1.0 - o.beta1),
            float(o.beta2),
            float(1.0 - o.beta2),
            float(std::sqrt(1.0 - std::pow(o.beta2, double(step)))),
            float(o.eps),
            decoupled ? 0.0f : float(o.weight_decay),
            // AdamW: param.mul_(1 - lr * weight_decay), the factor a double rounded to float.
            decoupled ? float(1.0 - o.lr * o.weight_decay) : 1.0f};
}

void adam_step(float* values, float* exp_avg, float* exp_avg_sq, const float* grads, int64_t n, const AdamScalars& s,
               cudaStream_t stream) {
    adam_kernel<<<unsigned((n + 255) / 256), 256, 0, stream>>>(values, exp_avg, exp_avg_sq, grads, n, s);
    CUDA_CHECK(cudaGetLastError());
}

}  // namespace dn::cuda
