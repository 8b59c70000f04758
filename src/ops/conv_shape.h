// defines: ConvShape (a 2-D convolution's sizes, shared by the CPU and GPU engines)
#pragma once
#include <cstdint>

namespace dn {

struct ConvShape {
    int64_t batch = 0;
    int64_t in_channels = 0, in_h = 0, in_w = 0;
    int64_t out_channels = 0;
    int64_t kernel = 1, stride = 1, pad = 0;

    int64_t out_h() const { return (in_h + 2 * pad - kernel) / stride + 1; }
    int64_t out_w() const { return (in_w + 2 * pad - kernel) / stride + 1; }
    int64_t weight_count() const { return out_channels * in_channels * kernel * kernel; }
    int64_t macs() const { return batch * out_h() * out_w() * out_channels * in_channels * kernel * kernel; }
    bool is_pointwise() const { return kernel == 1 && stride == 1 && pad == 0; }
};

}  // namespace dn
