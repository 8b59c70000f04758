// defines: log_softmax_nll_forward, log_softmax_nll_backward
#pragma once
#include <cstdint>

namespace dn {

// NLLLoss(log_softmax(logits)), the mean over the batch: logits (N,K), labels (N) in [0,K).
// Writes log_probs (N,K) and returns the loss; a label outside [0,K) is a std::out_of_range.
float log_softmax_nll_forward(float* log_probs, const float* logits, const int32_t* labels, int64_t batch,
                              int64_t classes);
// dlogits (N,K) = (softmax - onehot(label)) / loss_batch. loss_batch is the number of images the
// loss is the mean of: N, or under data parallelism the global batch this shard of N belongs to.
void log_softmax_nll_backward(float* dlogits, const float* log_probs, const int32_t* labels, int64_t batch,
                              int64_t classes, int64_t loss_batch);

}  // namespace dn
