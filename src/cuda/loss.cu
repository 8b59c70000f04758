#include "cuda/loss.h"

#include "cuda/cuda_check.h"

#include <stdexcept>
#include <string>

namespace dn::cuda {

namespace {
// One thread per row, as the CPU: K is 10 or 1000, and N rows are few.
__global__ void rows_forward(float* log_probs, LossRow* rows, const float* logits, const int32_t* labels, int64_t N,
                             int64_t K) {
    const int64_t n = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (n >= N) return;
    const float* z = logits + n * K;
    float* lp = log_probs + n * K;
    float mx = z[0];
    for (int64_t k = 1; k < K; ++k) mx = fmaxf(mx, z[k]);
    double sum = 0.0;
    for (int64_t k = 0; k < K; ++k) sum += exp(double(z[k] - mx));
    const float log_sum = mx + float(log(sum));
    double row = 0.0;
    for (int64_t k = 0; k < K; ++k) {
        lp[k] = z[k] - log_sum;
        row += lp[k];
    }
    const int32_t label = labels[n];
    rows[n].nll = label >= 0 && label < K ? -lp[label] : __int_as_float(0x7fc00000);
    rows[n].smooth = -row / double(K);
}

// The sums in double, in row order, as the CPU's.
__global__ void mean_of_rows(float* loss, const LossRow* rows, int64_t N, double label_smoothing) {
    double nll = 0.0, smooth = 0.0;
    for (int64_t n = 0; n < N; ++n) nll += double(rows[n].nll);
    if (label_smoothing == 0.0) {
        *loss = float(nll / double(N));
        return;
    }
    for (int64_t n = 0; n < N; ++n) smooth += rows[n].smooth;
    *loss = float(((1.0 - label_smoothing) * nll + label_smoothing * smooth) / double(N));
}

__global__ void rows_backward(float* dlogits, const float* log_probs, const int32_t* labels, int64_t N, int64_t K,
                              float inv, float label_target, float other_target) {
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= N * K) return;
    const int64_t n = i / K, k = i % K;
    dlogits[i] = (expf(log_probs[i]) - (k == labels[n] ? label_target : other_target)) * inv;
}
}  // namespace

void check_labels(const int32_t* labels, int64_t batch, int64_t classes) {
    for (int64_t n = 0; n < batch; ++n)
        if (labels[n] < 0 || labels[n] >= classes)
            throw std::out_of_range("label " + std::to_string(labels[n]) + " is outside [0, " + std::to_string(classes) +
                                    ")");
}

void log_softmax_nll_forward(float* loss, float* log_probs, LossRow* rows, const float* logits, const int32_t* labels,
                             int64_t batch, int64_t classes, double label_smoothing, cudaStream_t stream) {
    rows_forward<<<unsigned((batch + 127) / 128), 128, 0, stream>>>(log_probs, rows, logits, labels, batch, classes);
    mean_of_rows<<<1, 1, 0, stream>>>(loss, rows, batch, label_smoothing);
    CUDA_CHECK(cudaGetLastError());
}

void log_softmax_nll_backward(float* dlogits, const float* log_probs, const int32_t* labels, int64_t batch,
                              int64_t classes, int64_t loss_batch, double label_smoothing, cudaStream_t stream) {
    const int64_t n = batch * classes;
    // The CPU's targets, in float: e / K for every class, 1 - e more for the label.
    const float other = float(label_smoothing / double(classes)), label = float(1.0 - label_smoothing) + other;
    rows_backward<<<unsigned((n + 255) / 256), 256, 0, stream>>>(dlogits, log_probs, labels, batch, classes,
                                                                 1.0f / float(loss_batch), label, other);
    CUDA_CHECK(cudaGetLastError());
}

}  // namespace dn::cuda
