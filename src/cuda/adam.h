// defines: cuda::AdamScalars, cuda::adam_scalars, cuda::adam_step (torch.optim.Adam's update over
//          the one flat parameter buffer, in one kernel)
#pragma once
#include "train/optimizer.h"  // AdamOptions: the same hyper-parameters as the CPU's Adam

#include <cuda_runtime.h>

#include <cstdint>

namespace dn::cuda {

// The per-step scalars, computed on the host in double and applied in float, as the CPU's Adam
// (and PyTorch's single-tensor Adam) do. weight_decay is Adam's L2 term, shrink AdamW's factor
// (1 where there is none). The weight decay applies to the whole buffer: the CPU optimizer's
// ranges without decay are not here yet.
struct AdamScalars {
    float step_size, beta1, one_minus_beta1, beta2, one_minus_beta2, correction2_sqrt, eps, weight_decay, shrink;
};
// Throws std::invalid_argument for amsgrad, which the kernel does not do.
AdamScalars adam_scalars(const AdamOptions& options, int64_t step);  // step: from 1

// values, exp_avg, exp_avg_sq (n): updated in place from grads (n). No amsgrad.
void adam_step(float* values, float* exp_avg, float* exp_avg_sq, const float* grads, int64_t n, const AdamScalars& s,
               cudaStream_t stream);

}  // namespace dn::cuda
