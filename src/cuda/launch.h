// defines: cuda::kChannelTile, kRowTile, channel_grid (how the per-pixel, per-channel kernels are
//          laid out: a warp over 32 consecutive channels of a pixel reads 128 contiguous bytes)
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

namespace dn::cuda {

inline constexpr int kChannelTile = 32;  // threadIdx.x: channels
inline constexpr int kRowTile = 8;       // threadIdx.y: pixels

inline dim3 channel_block() { return dim3(kChannelTile, kRowTile); }

// x: channel tiles; y: pixel rows, as many as the grid allows (kernels stride over the rest).
inline dim3 channel_grid(int64_t pixels, int64_t channels) {
    const int64_t rows = (pixels + kRowTile - 1) / kRowTile;
    return dim3(unsigned((channels + kChannelTile - 1) / kChannelTile), unsigned(std::min<int64_t>(rows, 65535)));
}

}  // namespace dn::cuda
