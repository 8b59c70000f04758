#include "data/image_set.h"

namespace dn {

void ImageSet::to_tensor(float* out, int64_t first, int64_t n) const {
    const size_t size = size_t(n * image_bytes());
    const uint8_t* src = image(first);
    for (size_t i = 0; i < size; ++i) out[i] = float(src[i]) / 255.0f;
}

}  // namespace dn
