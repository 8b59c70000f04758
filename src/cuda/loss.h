// defines: cuda::log_softmax_nll_forward, cuda::log_softmax_nll_backward (ops/loss.h on the GPU)
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace dn::cuda {

// log_probs (N,K) = log_softmax(logits); loss (one float, device) = the mean NLL over the N rows,
// or with label_smoothing e > 0 nn.CrossEntropyLoss(label_smoothing=e): (1 - e) * NLL + e * mean
// over classes of -log_softmax, as ops/loss.h. row_loss (2N) is scratch. A label outside [0,K)
// makes the loss NaN (the host checks labels before they are copied; this keeps a bad one from
// reading out of bounds). No host sync.
void log_softmax_nll_forward(float* loss, float* log_probs, float* row_loss, const float* logits, const int32_t* labels,
                             int64_t batch, int64_t classes, double label_smoothing, cudaStream_t stream);
// dlogits (N,K) = (softmax - target) / loss_batch, target = (1 - e) onehot(label) + e / K.
void log_softmax_nll_backward(float* dlogits, const float* log_probs, const int32_t* labels, int64_t batch,
                              int64_t classes, int64_t loss_batch, double label_smoothing, cudaStream_t stream);

}  // namespace dn::cuda
