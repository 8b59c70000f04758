// defines: cuda::Tf32 (whether fp32 convolutions may run on TF32 tensor cores), with no CUDA header,
//          so that code built without the GPU engine can name it
#pragma once

namespace dn::cuda {

// allowed: fp32 convolutions may run on TF32 tensor cores (PyTorch's default,
// torch.backends.cudnn.allow_tf32 = True); off: full fp32 arithmetic.
enum class Tf32 { allowed, off };

}  // namespace dn::cuda
