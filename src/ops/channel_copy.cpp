#include "ops/channel_copy.h"

#include "ops/profiler.h"

#include <cassert>
#include <cstring>

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
        for (int64_t j = 0; j < C; ++j) d[j] = from_float<D>(to_float(s[j]));
    }
}
}  // namespace

void copy_channels(const FeatureMap& dst, const FeatureMap& src) {
    PhaseTimer timer(Phase::copy, 0.0, double(src.bytes() + dst.bytes()));
    assert(dst.pixels() == src.pixels() && dst.c == src.c);
    if (dst.type == DType::bf16 && src.type == DType::f32) return convert_channels<bf16, float>(dst, src);
    if (dst.type == DType::f32 && src.type == DType::bf16) return convert_channels<float, bf16>(dst, src);
    assert(dst.type == src.type);
    const int64_t P = src.pixels();
    const size_t bytes = size_t(src.c) * dtype_bytes(src.type);
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < P; ++p) std::memcpy(dst.pixel_address(p), src.pixel_address(p), bytes);
}

}  // namespace dn
