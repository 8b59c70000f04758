// defines: Picture, TileSet, weight_tiles, make_grid, abs_difference, enlarge, write_weight_grid
//
// Weight pictures as the DenseNet lecture draws them:
//   torchvision.utils.save_image(make_grid(tiles, normalize=True, nrow=8, padding=2), file)
// reproduced byte for byte (torchvision 0.14's utils.py; tests/report/test_weight_grid.cpp checks it).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace dn {

struct Picture {
    int64_t height = 0, width = 0, channels = 0;
    std::vector<uint8_t> pixels;  // (height, width, channels) interleaved
};

// A batch of images in PyTorch's layout, (count, channels, height, width), channels 1 or 3.
struct TileSet {
    const float* data = nullptr;
    int64_t count = 0, channels = 0, height = 0, width = 0;
};

// The tiles a convolution weight (O,I,KH,KW) is drawn as; a view into `weight`, no copy:
//   I == 3: the O kernels as RGB tiles        (make_grid(w), conv0 in the lecture)
//   I == 1: the O kernels as grey tiles       (make_grid(w) too)
//   else:   output channel `output_channel`'s I input kernels as grey tiles
//           (make_grid(w[c].unsqueeze(1)), denselayer1.conv1 in the lecture)
// Throws std::invalid_argument when shape is not 4-D and positive, or the channel is out of range.
TileSet weight_tiles(const float* weight, const std::vector<int64_t>& shape, int64_t output_channel = 0);

// make_grid(tiles, nrow=8, padding=2, pad_value=0, normalize=True, scale_each=False), then
// save_image's mul(255).add_(0.5).clamp_(0, 255) to uint8. Always 3 channels: grey tiles are
// repeated, as make_grid does. One tile comes back alone, unpadded, as make_grid returns it.
Picture make_grid(const TileSet& tiles);

// |a - b| elementwise, in float as torch.abs(a - b).
std::vector<float> abs_difference(const float* a, const float* b, int64_t count);

// Each pixel becomes a factor x factor block: nearest neighbour, so kernels stay crisp squares.
Picture enlarge(const Picture& picture, int64_t factor);

// Writes the grid enlarged by the largest integer factor that keeps it within about 600 pixels
// (a 7x7 kernel is otherwise too small to see), atomically; returns the factor used.
int64_t write_weight_grid(const std::string& path, const Picture& grid);

}  // namespace dn
