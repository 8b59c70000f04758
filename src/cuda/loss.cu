#include "cuda/loss.h"

#include "cuda/cuda_check.h"

namespace dn::cuda {

namespace {
// One thread per row, as the CPU: K is 10 or 1000, and N rows are few.
__global__ void rows_forward(float* log_probs, float* row_loss, const float* logits, const int32_t* labels,
                             int64_t N, int64_t K) {
    const int64_t n = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (n >= N) return;
    const float* z = logits + n * K;
    float* lp = log_probs + n * K;
    float mx = z[0];
    for (int64_t k = 1; k < K; ++k) mx = fmaxf(mx, z[k]);
    double sum = 0.0;
    for (int64_t k = 0; k < K; ++k) sum += exp(double(z[k] - mx));
    const float log_sum = mx + float(log(sum));
    for (int64_t k = 0; k < K; ++k) lp[k] = z[k] - log_sum;
    const int32_t label = labels[n];
    row_loss[n] = label >= 0 && label < K ? -lp[label] : __int_as_float(0x7fc00000);
}

__global__ void mean_of_rows(float* loss, const float* row_loss, int64_t N) {
    double total = 0.0;
    for (int64_t n = 0; n < N; ++n) total += double(row_loss[n]);
    *loss = float(total / double(N));
}

__global__ void rows_backward(float* dlogits, const float* log_probs, const int32_t* labels, int64_t N, int64_t K,
                              float inv) {
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= N * K) return;
    const int64_t n = i / K, k = i % K;
    dlogits[i] = (expf(log_probs[i]) - (k == labels[n] ? 1.0f : 0.0f)) * inv;
}
}  // namespace

void log_softmax_nll_forward(float* loss, float* log_probs, float* row_loss, const float* logits, const int32_t* labels,
                             int64_t batch, int64_t classes, cudaStream_t stream) {
    rows_forward<<<unsigned((batch + 127) / 128), 128, 0, stream>>>(log_probs, row_loss, logits, labels, batch, classes);
    mean_of_rows<<<1, 1, 0, stream>>>(loss, row_loss, batch);
    CUDA_CHECK(cudaGetLastError());
}

void log_softmax_nll_backward(float* dlogits, const float* log_probs, const int32_t* labels, int64_t batch,
                              int64_t classes, int64_t loss_batch, cudaStream_t stream) {
    const int64_t n = batch * classes;
    rows_backward<<<unsigned((n + 255) / 256), 256, 0, stream>>>(dlogits, log_probs, labels, batch, classes,
                                                                 1.0f / float(loss_batch));
    CUDA_CHECK(cudaGetLastError());
}

}  // namespace dn::cuda
