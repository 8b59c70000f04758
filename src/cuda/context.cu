#include "cuda/context.h"

#include "cuda/cudnn_check.h"

#include <atomic>
#include <cstdio>
#include <stdexcept>
#include <utility>

namespace dn::cuda {

Context::Context(int device, Tf32 tf32) : device_(device), tf32_(tf32) {
    CUDA_CHECK(cudaSetDevice(device));
    CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    CUDNN_CHECK(cudnnCreate(&cudnn_));
    CUDNN_CHECK(cudnnSetStream(cudnn_, stream_));
    CUBLAS_CHECK(cublasCreate(&cublas_));
    CUBLAS_CHECK(cublasSetStream(cublas_, stream_));
}

Context::~Context() {
    cublasDestroy(cublas_);
    cudnnDestroy(cudnn_);
    cudaStreamDestroy(stream_);
}

void Context::synchronize() const { CUDA_CHECK(cudaStreamSynchronize(stream_)); }

namespace {
std::atomic<size_t> live{0}, peak{0};

void count_allocation(size_t bytes) {
    const size_t now = live += bytes;
    size_t before = peak.load();
    while (now > before && !peak.compare_exchange_weak(before, now)) {
    }
}

void release(char* data, size_t bytes) {
    if (!data) return;
    cudaFree(data);
    live -= bytes;
}
}  // namespace

size_t DeviceBuffer::live_bytes() { return live.load(); }
size_t DeviceBuffer::peak_bytes() { return peak.load(); }
void DeviceBuffer::reset_peak() { peak.store(live.load()); }

DeviceBuffer::DeviceBuffer(size_t bytes) : size_(bytes) {
    if (!bytes) return;
    const cudaError_t status = cudaMalloc(reinterpret_cast<void**>(&data_), bytes);
    if (status == cudaErrorMemoryAllocation) {
        size_t free = 0, total = 0;
        const bool known = cudaMemGetInfo(&free, &total) == cudaSuccess;
        (void)cudaGetLastError();  // neither error is sticky: the process can go on (a smaller batch)
        char card[64] = "free memory unknown";
        if (known) std::snprintf(card, sizeof card, "%.1f of %.1f GB free", double(free) / 1e9, double(total) / 1e9);
        char why[320];
        std::snprintf(why, sizeof why,
                      "the GPU is out of memory: %.1f MB more asked, %.1f MB already held by this run, %s. HINT: a "
                      "smaller --batch-size; `densenet complexity --device cuda` gives the largest that fits",
                      double(bytes) / 1e6, double(live.load()) / 1e6, card);
        throw std::runtime_error(why);
    }
    CUDA_CHECK(status);
    count_allocation(bytes);
}

DeviceBuffer::~DeviceBuffer() { release(data_, size_); }

DeviceBuffer::DeviceBuffer(DeviceBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& other) noexcept {
    if (this != &other) {
        release(data_, size_);
        data_ = std::exchange(other.data_, nullptr);
        size_ = std::exchange(other.size_, 0);
    }
    return *this;
}

PinnedBuffer::PinnedBuffer(size_t bytes) { CUDA_CHECK(cudaMallocHost(reinterpret_cast<void**>(&data_), bytes)); }
PinnedBuffer::~PinnedBuffer() { cudaFreeHost(data_); }

Stream::Stream() { CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking)); }
Stream::~Stream() {
    cudaStreamSynchronize(stream_);
    cudaStreamDestroy(stream_);
}

Event::Event() { CUDA_CHECK(cudaEventCreateWithFlags(&event_, cudaEventDisableTiming)); }
Event::~Event() { cudaEventDestroy(event_); }

}  // namespace dn::cuda
