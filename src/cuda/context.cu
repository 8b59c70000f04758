#include "cuda/context.h"

#include "cuda/cudnn_check.h"

#include <atomic>
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
    CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&data_), bytes));
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
