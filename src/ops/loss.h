// defines: log_softmax_nll_forward, log_softmax_nll_backward (NLLLoss of log_softmax, and
//          CrossEntropyLoss with label smoothing)
#pragma once
#include <cstdint>

namespace dn {

// NLLLoss(log_softmax(logits)), the mean over the batch: logits (N,K), labels (N) in [0,K).
// With label_smoothing e > 0 it is nn.CrossEntropyLoss(label_smoothing=e):
// (1 - e) * NLL + e * mean over classes of -log_softmax. Writes log_probs (N,K) and returns the
// loss; a label outside [0,K) is a std::out_of_range.
float log_softmax_nll_forward(float* log_probs, const float* logits, const int32_t* labels, int64_t batch,
                              int64_t classes, double label_smoothing);
// dlogits (N,K) = (softmax - target) / loss_batch, target = (1 - e) onehot(label) + e / K.
// loss_batch is the number of images the loss is the mean of: N, or under data parallelism the
// global batch this shard of N belongs to.
void log_softmax_nll_backward(float* dlogits, const float* log_probs, const int32_t* labels, int64_t batch,
                              int64_t classes, int64_t loss_batch, double label_smoothing);

}  // namespace dn
