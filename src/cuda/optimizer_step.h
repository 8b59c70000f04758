// defines: cuda::adam_step, cuda::sgd_step (torch.optim.Adam/AdamW and SGD over a range of the
//          one flat parameter buffer, one kernel each), cuda::GradientNorm (clip_grad_norm_ on the
//          device), cuda::blend_average (the weight average's update)
#pragma once
#include "cuda/context.h"
#include "model/parameters.h"
#include "train/optimizer.h"  // the step scalars both engines derive from the same options

#include <cuda_runtime.h>

#include <cstdint>

namespace dn::cuda {

// values, exp_avg, exp_avg_sq (n): updated in place from grads (n), with the scalars the CPU's
// Adam uses (adam_step_scalars). No amsgrad.
void adam_step(float* values, float* exp_avg, float* exp_avg_sq, const float* grads, int64_t n,
               const AdamStepScalars& s, cudaStream_t stream);
// values (n) and, with momentum, momentum_buffer (n): as the CPU's Sgd (sgd_step_scalars).
void sgd_step(float* values, float* momentum_buffer, const float* grads, int64_t n, const SgdStepScalars& s,
              cudaStream_t stream);

// average (n) = keep * average + take * model, each product and the sum rounded on its own, as
// PyTorch's ops (AveragedModel's EMA; WeightAverage::update on the CPU).
void blend_average(float* average, const float* model, int64_t n, float keep, float take, cudaStream_t stream);

// torch.nn.utils.clip_grad_norm_ over the device gradients of a parameter table, as the CPU's
// clip_grad_norm (train/parameter_update.h): each parameter's gradient norm (its squares summed in
// double, the root a float), the norm of those, and every gradient scaled by
// max_norm / (norm + 1e-6) where that is below 1. The scale is read on the device: no host sync.
class GradientNorm {
public:
    explicit GradientNorm(const Parameters& params);
    void clip(float* grads, double max_norm, cudaStream_t stream);
    // The norm before the last clip(), from the device (synchronises).
    double last_norm(cudaStream_t stream) const;

private:
    int64_t tensors_ = 0, count_ = 0;
    DeviceBuffer ranges_;  // (offset, numel) of each parameter, int64 pairs
    DeviceBuffer norms_;   // each parameter's gradient norm, then the total and the scale
};

}  // namespace dn::cuda
