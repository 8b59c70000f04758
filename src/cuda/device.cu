#include "cuda/device.h"

#include "cuda/cuda_check.h"

#include <cstdio>

namespace dn::cuda {

int visible_devices(std::string* why) {
    int count = 0;
    const cudaError_t status = cudaGetDeviceCount(&count);
    if (status != cudaSuccess) {
        cudaGetLastError();  // the runtime keeps the error; clear it for later calls
        count = 0;
    }
    if (count == 0 && why) *why = status == cudaSuccess ? "no device" : cudaGetErrorString(status);
    return count;
}

std::string device_name(int device) {
    cudaDeviceProp p{};
    CUDA_CHECK(cudaGetDeviceProperties(&p, device));
    char size[64];
    std::snprintf(size, sizeof size, "%.1f GiB", double(p.totalGlobalMem) / double(1ull << 30));
    return std::string(p.name) + " (sm_" + std::to_string(p.major) + std::to_string(p.minor) + ", " + size + ")";
}

}  // namespace dn::cuda
