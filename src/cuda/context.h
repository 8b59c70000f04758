// defines: cuda::Context (one GPU: its stream, and the cuDNN and cuBLAS handles bound to it),
//          cuda::DeviceBuffer, cuda::PinnedBuffer, cuda::Stream, cuda::Event (owners of what the
//          CUDA runtime hands out, freed with them)
#pragma once
#include "cuda/conv.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <cstddef>
#include <string>

namespace dn::cuda {

// Everything runs on one stream, in order; nothing in a step waits for the host.
class Context {
public:
    Context(int device, Tf32 tf32);
    ~Context();
    Context(const Context&) = delete;
    Context& operator=(const Context&) = delete;

    int device() const { return device_; }
    cudaStream_t stream() const { return stream_; }
    cudnnHandle_t cudnn() const { return cudnn_; }
    cublasHandle_t cublas() const { return cublas_; }
    Tf32 tf32() const { return tf32_; }
    void synchronize() const;

private:
    int device_;
    Tf32 tf32_;
    cudaStream_t stream_ = nullptr;
    cudnnHandle_t cudnn_ = nullptr;
    cublasHandle_t cublas_ = nullptr;
};

// One device allocation, made when the network is built and never inside a step. Every live
// buffer's bytes are counted, as PyTorch's caching allocator counts its tensors
// (torch.cuda.max_memory_allocated): cuDNN's and cuBLAS's own allocations are not among them.
class DeviceBuffer {
public:
    static size_t live_bytes();  // in all DeviceBuffers now
    static size_t peak_bytes();  // the most live_bytes() has been since the last reset_peak()
    static void reset_peak();

    DeviceBuffer() = default;
    explicit DeviceBuffer(size_t bytes);
    ~DeviceBuffer();
    DeviceBuffer(DeviceBuffer&& other) noexcept;
    DeviceBuffer& operator=(DeviceBuffer&& other) noexcept;
    DeviceBuffer(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(const DeviceBuffer&) = delete;

    char* bytes() const { return data_; }
    float* floats() const { return reinterpret_cast<float*>(data_); }
    size_t size() const { return size_; }

private:
    char* data_ = nullptr;
    size_t size_ = 0;
};

// Page-locked host memory, which the GPU's copy engines read while the host goes on.
class PinnedBuffer {
public:
    explicit PinnedBuffer(size_t bytes);
    ~PinnedBuffer();
    PinnedBuffer(const PinnedBuffer&) = delete;
    PinnedBuffer& operator=(const PinnedBuffer&) = delete;
    char* bytes() const { return data_; }

private:
    char* data_ = nullptr;
};

// A non-blocking stream of its own; destroyed once its work is done.
class Stream {
public:
    Stream();
    ~Stream();
    Stream(const Stream&) = delete;
    Stream& operator=(const Stream&) = delete;
    cudaStream_t get() const { return stream_; }

private:
    cudaStream_t stream_ = nullptr;
};

// An event for ordering only (no timing).
class Event {
public:
    Event();
    ~Event();
    Event(const Event&) = delete;
    Event& operator=(const Event&) = delete;
    cudaEvent_t get() const { return event_; }

private:
    cudaEvent_t event_ = nullptr;
};

}  // namespace dn::cuda
