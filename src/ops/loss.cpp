#include "ops/loss.h"

#include "ops/profiler.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace dn {

float log_softmax_nll_forward(float* log_probs, const float* logits, const int32_t* labels, int64_t batch,
                              int64_t classes) {
    PhaseTimer timer(Phase::classifier_loss);
    for (int64_t n = 0; n < batch; ++n)
        if (labels[n] < 0 || labels[n] >= classes)
            throw std::out_of_range("label " + std::to_string(labels[n]) + " is outside [0, " + std::to_string(classes) + ")");
    double total = 0.0;
    for (int64_t n = 0; n < batch; ++n) {
        const float* z = logits + n * classes;
        float* lp = log_probs + n * classes;
        float mx = *std::max_element(z, z + classes);
        double sum = 0.0;
        for (int64_t k = 0; k < classes; ++k) sum += std::exp(double(z[k] - mx));
        float log_sum = mx + float(std::log(sum));
        for (int64_t k = 0; k < classes; ++k) lp[k] = z[k] - log_sum;
        total -= lp[labels[n]];
    }
    return float(total / double(batch));
}

void log_softmax_nll_backward(float* dlogits, const float* log_probs, const int32_t* labels, int64_t batch,
                              int64_t classes, int64_t loss_batch) {
    PhaseTimer timer(Phase::classifier_loss);
    const float inv = 1.0f / float(loss_batch);
    for (int64_t n = 0; n < batch; ++n)
        for (int64_t k = 0; k < classes; ++k)
            dlogits[n * classes + k] = (std::exp(log_probs[n * classes + k]) - (k == labels[n] ? 1.0f : 0.0f)) * inv;
}

}  // namespace dn
