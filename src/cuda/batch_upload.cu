#include "cuda/batch_upload.h"

#include "cuda/cuda_check.h"

#include <cstring>

namespace dn::cuda {

BatchUpload::Slot::Slot(int64_t image_floats, int64_t batch)
    : host_images(size_t(image_floats) * sizeof(float)), host_labels(size_t(batch) * sizeof(int32_t)),
      images(size_t(image_floats) * sizeof(float)), labels(size_t(batch) * sizeof(int32_t)) {}

BatchUpload::BatchUpload(int64_t image_floats, int64_t batch, cudaStream_t compute)
    : compute_(compute), slots_{Slot(image_floats, batch), Slot(image_floats, batch)} {
    for (Slot& s : slots_) CUDA_CHECK(cudaEventRecord(s.released.get(), compute_));  // free from the start
}

BatchUpload::~BatchUpload() { cudaStreamSynchronize(copy_.get()); }

BatchUpload::DeviceBatch BatchUpload::upload(const float* images_nchw, const int32_t* labels) {
    current_ ^= 1;
    Slot& s = slots_[current_];
    // The host waits here only if the step before last still reads this slot.
    CUDA_CHECK(cudaEventSynchronize(s.released.get()));
    std::memcpy(s.host_images.bytes(), images_nchw, s.images.size());
    std::memcpy(s.host_labels.bytes(), labels, s.labels.size());
    const cudaStream_t copy = copy_.get();
    CUDA_CHECK(cudaMemcpyAsync(s.images.bytes(), s.host_images.bytes(), s.images.size(), cudaMemcpyHostToDevice, copy));
    CUDA_CHECK(cudaMemcpyAsync(s.labels.bytes(), s.host_labels.bytes(), s.labels.size(), cudaMemcpyHostToDevice, copy));
    CUDA_CHECK(cudaEventRecord(s.copied.get(), copy));
    CUDA_CHECK(cudaStreamWaitEvent(compute_, s.copied.get(), 0));
    return {s.images.floats(), reinterpret_cast<const int32_t*>(s.labels.bytes())};
}

void BatchUpload::release_after_queued_work() {
    CUDA_CHECK(cudaEventRecord(slots_[current_].released.get(), compute_));
}

}  // namespace dn::cuda
