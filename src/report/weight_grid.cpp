#include "report/weight_grid.h"

#include "io/png.h"
#include "tensor/shape_text.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace dn {

namespace {
constexpr int64_t kRow = 8, kPadding = 2;  // make_grid's nrow and padding
constexpr int64_t kDisplayPixels = 600;

// save_image's float -> uint8, in float as PyTorch computes it. volatile keeps the compiler from
// fusing x * 255 + 0.5 into one FMA, whose single rounding can land on the other side of .5.
uint8_t to_byte(float x) {
    volatile float scaled = x * 255.0f;
    const float v = std::clamp(scaled + 0.5f, 0.0f, 255.0f);
    return std::isnan(v) ? 0 : uint8_t(v);
}
}  // namespace

TileSet weight_tiles(const float* weight, const std::vector<int64_t>& shape, int64_t output_channel) {
    if (shape.size() != 4 || std::any_of(shape.begin(), shape.end(), [](int64_t d) { return d <= 0; }))
        throw std::invalid_argument("shape " + shape_text(shape) + " is not a convolution weight (O, I, KH, KW)");
    const int64_t O = shape[0], I = shape[1], KH = shape[2], KW = shape[3];
    if (I == 3 || I == 1) return {weight, O, I, KH, KW};
    if (output_channel < 0 || output_channel >= O)
        throw std::invalid_argument("output channel " + std::to_string(output_channel) + " is out of range for a weight of shape " +
                                    shape_text(shape));
    return {weight + output_channel * I * KH * KW, I, 1, KH, KW};
}

Picture make_grid(const TileSet& t) {
    if (!t.data || t.count <= 0 || t.height <= 0 || t.width <= 0 || (t.channels != 1 && t.channels != 3))
        throw std::invalid_argument("make_grid: want (N, 1 or 3, H, W) tiles, got (" + std::to_string(t.count) + ", " +
                                    std::to_string(t.channels) + ", " + std::to_string(t.height) + ", " +
                                    std::to_string(t.width) + ")");
    const int64_t n = t.count * t.channels * t.height * t.width;
    const auto [lo_it, hi_it] = std::minmax_element(t.data, t.data + n);
    const float lo = *lo_it;
    // norm_ip: img.sub_(low).div_(max(high - low, 1e-5)); the difference and the floor are Python
    // floats (double), rounded to float when the tensor is divided.
    const float range = float(std::max(double(*hi_it) - double(lo), 1e-5));

    // A single image comes back from make_grid as it is, without padding.
    const bool single = t.count == 1;
    const int64_t cols = single ? 1 : std::min(kRow, t.count);
    const int64_t rows = (t.count + cols - 1) / cols;
    const int64_t pad = single ? 0 : kPadding;
    const int64_t cell_h = t.height + pad, cell_w = t.width + pad;
    Picture p;
    p.height = cell_h * rows + pad;
    p.width = cell_w * cols + pad;
    p.channels = 3;
    p.pixels.assign(size_t(p.height * p.width * 3), to_byte(0.0f));  // pad_value 0
    for (int64_t k = 0; k < t.count; ++k) {
        const int64_t top = (k / cols) * cell_h + pad, left = (k % cols) * cell_w + pad;
        for (int64_t c = 0; c < 3; ++c) {
            const float* tile = t.data + (k * t.channels + (t.channels == 3 ? c : 0)) * t.height * t.width;  // (H,W)
            for (int64_t y = 0; y < t.height; ++y)
                for (int64_t x = 0; x < t.width; ++x) {
                    const float v = std::clamp(tile[y * t.width + x], lo, *hi_it);
                    p.pixels[size_t(((top + y) * p.width + left + x) * 3 + c)] = to_byte((v - lo) / range);
                }
        }
    }
    return p;
}

std::vector<float> abs_difference(const float* a, const float* b, int64_t count) {
    std::vector<float> d(size_t(std::max<int64_t>(count, 0)));
    for (int64_t i = 0; i < count; ++i) d[size_t(i)] = std::fabs(a[i] - b[i]);
    return d;
}

Picture enlarge(const Picture& in, int64_t factor) {
    if (factor < 1) throw std::invalid_argument("enlarge: factor must be at least 1, got " + std::to_string(factor));
    Picture out{in.height * factor, in.width * factor, in.channels, {}};
    out.pixels.resize(size_t(out.height * out.width * out.channels));
    for (int64_t y = 0; y < out.height; ++y)
        for (int64_t x = 0; x < out.width; ++x)
            std::copy_n(&in.pixels[size_t(((y / factor) * in.width + x / factor) * in.channels)], in.channels,
                        &out.pixels[size_t((y * out.width + x) * out.channels)]);
    return out;
}

int64_t write_weight_grid(const std::string& path, const Picture& grid) {
    const int64_t factor = std::max<int64_t>(1, kDisplayPixels / std::max(grid.height, grid.width));
    const Picture big = enlarge(grid, factor);
    write_png(path, big.pixels.data(), big.height, big.width, big.channels);
    return factor;
}

}  // namespace dn
