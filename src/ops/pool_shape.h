// defines: PoolShape, PoolKind (a 2-D pooling's sizes, shared by the CPU and GPU engines)
#pragma once
#include <cstdint>

namespace dn {

struct PoolShape {
    int64_t batch = 0, channels = 0, in_h = 0, in_w = 0;
    int64_t kernel = 2, stride = 2, pad = 0;

    int64_t out_h() const { return (in_h + 2 * pad - kernel) / stride + 1; }
    int64_t out_w() const { return (in_w + 2 * pad - kernel) / stride + 1; }
};

enum class PoolKind { max, average };

}  // namespace dn
