#include "cuda/batch_upload.h"

#include "cuda/cuda_check.h"

#include <cstring>

namespace dn::cuda {

BatchUpload::BatchUpload(int64_t image_floats, int64_t batch, cudaStream_t compute)
    : image_floats_(image_floats), batch_(batch), compute_(compute) {
    CUDA_CHECK(cudaStreamCreateWithFlags(&copy_, cudaStreamNonBlocking));
    for (Slot& s : slots_) {
        CUDA_CHECK(cudaMallocHost(reinterpret_cast<void**>(&s.host_images), size_t(image_floats) * sizeof(float)));
        CUDA_CHECK(cudaMallocHost(reinterpret_cast<void**>(&s.host_labels), size_t(batch) * sizeof(int32_t)));
        s.images = DeviceBuffer(size_t(image_floats) * sizeof(float));
        s.labels = DeviceBuffer(size_t(batch) * sizeof(int32_t));
        CUDA_CHECK(cudaEventCreateWithFlags(&s.copied, cudaEventDisableTiming));
        CUDA_CHECK(cudaEventCreateWithFlags(&s.released, cudaEventDisableTiming));
        CUDA_CHECK(cudaEventRecord(s.released, compute_));  // free from the start
    }
}

BatchUpload::~BatchUpload() {
    for (Slot& s : slots_) {
        cudaEventDestroy(s.copied);
        cudaEventDestroy(s.released);
        cudaFreeHost(s.host_images);
        cudaFreeHost(s.host_labels);
    }
    cudaStreamDestroy(copy_);
}

BatchUpload::DeviceBatch BatchUpload::upload(const float* images_nchw, const int32_t* labels) {
    current_ ^= 1;
    Slot& s = slots_[current_];
    // The host waits here only if the step before last still reads this slot.
    CUDA_CHECK(cudaEventSynchronize(s.released));
    std::memcpy(s.host_images, images_nchw, size_t(image_floats_) * sizeof(float));
    std::memcpy(s.host_labels, labels, size_t(batch_) * sizeof(int32_t));
    CUDA_CHECK(cudaMemcpyAsync(s.images.bytes(), s.host_images, s.images.size(), cudaMemcpyHostToDevice, copy_));
    CUDA_CHECK(cudaMemcpyAsync(s.labels.bytes(), s.host_labels, s.labels.size(), cudaMemcpyHostToDevice, copy_));
    CUDA_CHECK(cudaEventRecord(s.copied, copy_));
    CUDA_CHECK(cudaStreamWaitEvent(compute_, s.copied, 0));
    return {s.images.floats(), reinterpret_cast<const int32_t*>(s.labels.bytes())};
}

void BatchUpload::release_after_queued_work() { CUDA_CHECK(cudaEventRecord(slots_[current_].released, compute_)); }

}  // namespace dn::cuda
