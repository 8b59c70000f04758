// defines: cuda::check_labels, cuda::LossRow, cuda::log_softmax_nll_forward, cuda::log_softmax_nll_backward
//          (ops/loss.h on the GPU)
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace dn::cuda {

// Throws std::out_of_range, as the CPU's loss does, for a label outside [0, classes): on the host,
// before a batch goes to the device.
void check_labels(const int32_t* labels, int64_t batch, int64_t classes);

// log_probs (N,K) = log_softmax(logits); loss (one float, device) = the mean NLL over the N rows,
// or with label_smoothing e > 0 nn.CrossEntropyLoss(label_smoothing=e): (1 - e) * NLL + e * mean
// over classes of -log_softmax, as ops/loss.h. rows (N) is scratch. A label outside [0,K) makes
// the loss NaN (the host checks labels before they are copied, check_labels; this keeps a bad one
// from reading out of bounds). No host sync.
struct LossRow {
    float nll;      // -log p[label]
    double smooth;  // -mean over classes of log p, summed in double as the CPU's
};
void log_softmax_nll_forward(float* loss, float* log_probs, LossRow* rows, const float* logits, const int32_t* labels,
                             int64_t batch, int64_t classes, double label_smoothing, cudaStream_t stream);
// dlogits (N,K) = (softmax - target) / loss_batch, target = (1 - e) onehot(label) + e / K.
void log_softmax_nll_backward(float* dlogits, const float* log_probs, const int32_t* labels, int64_t batch,
                              int64_t classes, int64_t loss_batch, double label_smoothing, cudaStream_t stream);

}  // namespace dn::cuda
