// defines: cuda::BatchUpload (a training run's host batches to the device through pinned memory,
//          on a copy stream of their own, so that a batch's copy overlaps the previous step's
//          backward)
#pragma once
#include "cuda/context.h"

#include <cuda_runtime.h>

#include <cstdint>

namespace dn::cuda {

// Two slots, used in turn, each a pinned host buffer and its device copy. A slot is refilled only
// once the step that last used it has finished with it (release_after_queued_work), so that one
// batch is copied while the other's step runs.
class BatchUpload {
public:
    // image_floats: one batch's images (N*C*H*W); compute: the stream the network runs on.
    BatchUpload(int64_t image_floats, int64_t batch, cudaStream_t compute);
    ~BatchUpload();  // waits for the copies in flight
    BatchUpload(const BatchUpload&) = delete;
    BatchUpload& operator=(const BatchUpload&) = delete;

    struct DeviceBatch {
        const float* images;
        const int32_t* labels;
    };
    // Copies the batch (host memory) into the next slot and makes the compute stream wait for the
    // copy, not the host: the pointers are for work queued on the compute stream from now on.
    DeviceBatch upload(const float* images_nchw, const int32_t* labels);
    // After the last work reading the current batch is queued on the compute stream.
    void release_after_queued_work();

private:
    struct Slot {
        Slot(int64_t image_floats, int64_t batch);
        PinnedBuffer host_images, host_labels;
        DeviceBuffer images, labels;
        Event copied, released;
    };
    cudaStream_t compute_;
    Stream copy_;
    Slot slots_[2];
    int current_ = 1;
};

}  // namespace dn::cuda
