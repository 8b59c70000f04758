#include "ops/channel_copy.h"

#include "ops/profiler.h"

#include <cassert>
#include <type_traits>

namespace dn {

namespace {
template <class D, class S>
void convert_channels(const FeatureMap& dst, const FeatureMap& src) {
    const int64_t P = src.pixels(), C = src.c;
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < P; ++p) {
        const S* s = src.pixel<S>(p);
        D* d = dst.pixel<D>(p);
#pragma omp simd
        for (int64_t j = 0; j < C; ++j) {
            if constexpr (std::is_same_v<D, S>) d[j] = s[j];
            else d[j] = from_float<D>(to_float(s[j]));
        }
    }
}
}  // namespace

void copy_channels(const FeatureMap& dst, const FeatureMap& src) {
    PhaseTimer timer(Phase::copy, 0.0, double(src.bytes() + dst.bytes()));
    assert(dst.pixels() == src.pixels() && dst.c == src.c);
    if (dst.type == DType::bf16 && src.type == DType::f32) return convert_channels<bf16, float>(dst, src);
    if (dst.type == DType::f32 && src.type == DType::bf16) return convert_channels<float, bf16>(dst, src);
    assert(dst.type == src.type);
    // A vector loop over each pixel's channels rather than a memcpy call per pixel: a dense layer's
    // new channels are 32 (128 bytes in f32), where the call costs as much as the copy.
    if (src.type == DType::f32) return convert_channels<float, float>(dst, src);
    return convert_channels<bf16, bf16>(dst, src);
}

}  // namespace dn
