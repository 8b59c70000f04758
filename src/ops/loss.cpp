#include "ops/loss.h"

#include "ops/profiler.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace dn {

float log_softmax_nll_forward(float* log_probs, const float* logits, const int32_t* labels, int64_t batch,
                              int64_t classes, double label_smoothing) {
    PhaseTimer timer(Phase::classifier_loss);
    for (int64_t n = 0; n < batch; ++n)
        if (labels[n] < 0 || labels[n] >= classes)
            throw std::out_of_range("label " + std::to_string(labels[n]) + " is outside [0, " + std::to_string(classes) + ")");
    double nll = 0.0, smooth = 0.0;  // sums over the batch of -log p[label] and of -mean_k log p[k]
    for (int64_t n = 0; n < batch; ++n) {
        const float* z = logits + n * classes;
        float* lp = log_probs + n * classes;
        float mx = *std::max_element(z, z + classes);
        double sum = 0.0;
        for (int64_t k = 0; k < classes; ++k) sum += std::exp(double(z[k] - mx));
        float log_sum = mx + float(std::log(sum));
        double row = 0.0;
        for (int64_t k = 0; k < classes; ++k) {
            lp[k] = z[k] - log_sum;
            row += lp[k];
        }
        nll -= lp[labels[n]];
        smooth -= row / double(classes);
    }
    if (label_smoothing == 0.0) return float(nll / double(batch));
    return float(((1.0 - label_smoothing) * nll + label_smoothing * smooth) / double(batch));
}

void log_softmax_nll_backward(float* dlogits, const float* log_probs, const int32_t* labels, int64_t batch,
                              int64_t classes, int64_t loss_batch, double label_smoothing) {
    PhaseTimer timer(Phase::classifier_loss);
    const float inv = 1.0f / float(loss_batch);
    const float other = float(label_smoothing / double(classes)), label = float(1.0 - label_smoothing) + other;
    for (int64_t n = 0; n < batch; ++n)
        for (int64_t k = 0; k < classes; ++k)
            dlogits[n * classes + k] = (std::exp(log_probs[n * classes + k]) - (k == labels[n] ? label : other)) * inv;
}

}  // namespace dn
