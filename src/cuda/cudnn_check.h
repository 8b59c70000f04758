// defines: CUDNN_CHECK, CUBLAS_CHECK (cuda_check.h's CUDA_CHECK for cuDNN and cuBLAS calls)
#pragma once
#include "cuda/cuda_check.h"

#include <cublas_v2.h>
#include <cudnn.h>

#define CUDNN_CHECK(call)                                                                              \
    do {                                                                                               \
        const cudnnStatus_t status_ = (call);                                                          \
        if (status_ != CUDNN_STATUS_SUCCESS) ::dn::cuda::fail(#call, cudnnGetErrorString(status_), __FILE__, __LINE__); \
    } while (0)

#define CUBLAS_CHECK(call)                                                                               \
    do {                                                                                                 \
        const cublasStatus_t status_ = (call);                                                           \
        if (status_ != CUBLAS_STATUS_SUCCESS) ::dn::cuda::fail(#call, cublasGetStatusString(status_), __FILE__, __LINE__); \
    } while (0)
