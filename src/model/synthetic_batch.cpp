#include "model/synthetic_batch.h"

#include <random>

namespace dn {

SyntheticBatch synthetic_batch(int64_t batch, int64_t channels, int64_t size, int64_t classes) {
    std::mt19937_64 rng(0);
    std::uniform_real_distribution<float> pixel(0.0f, 1.0f);
    std::uniform_int_distribution<int32_t> label(0, int32_t(classes - 1));
    SyntheticBatch b;
    b.images.resize(size_t(batch * channels * size * size));
    for (float& v : b.images) v = pixel(rng);
    b.labels.resize(size_t(batch));
    for (int32_t& v : b.labels) v = label(rng);
    return b;
}

}  // namespace dn
