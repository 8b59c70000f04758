// defines: cuda::visible_devices, cuda::device_name (what the CUDA runtime sees, without failing
//          where there is no driver or GPU)
#pragma once
#include <string>

namespace dn::cuda {

// The GPUs this process can use: 0 when there is no driver, no GPU, or CUDA_VISIBLE_DEVICES hides
// them. Never throws: "no GPU" is an answer, not an error. With 0, *why (when given) is the CUDA
// runtime's reason, which tells a machine without a GPU from one whose driver is unusable.
int visible_devices(std::string* why = nullptr);

// "NVIDIA H200 (sm_90, 139.8 GiB)"; throws when `device` is not visible.
std::string device_name(int device);

}  // namespace dn::cuda
