#include "data/transform.h"

#include "data/resize.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace dn {

Augment parse_augment(const std::string& text) {
    Augment a;
    if (text == "none") return a;
    size_t start = 0;
    while (start <= text.size()) {
        const size_t end = std::min(text.find(',', start), text.size());
        const std::string item = text.substr(start, end - start);
        if (item == "flip-crop") a.crop = Crop::padded, a.flip = true;
        else if (item == "crop") a.crop = Crop::padded;
        else if (item == "resized-crop") a.crop = Crop::resized;
        else if (item == "flip") a.flip = true;
        else if (item == "erase") a.erase_probability = 0.5;
        else
            throw std::invalid_argument("unknown augmentation '" + item +
                                        "' (none, or a comma list of crop, resized-crop, flip, erase; flip-crop is crop,flip)");
        start = end + 1;
    }
    return a;
}

void validate(const Transform& t, const ImageSet& set) {
    if (t.size <= 0) throw std::invalid_argument("the input size must be positive");
    if (t.channels != set.channels && !(set.channels == 1 && t.channels == 3))
        throw std::invalid_argument("the model takes " + std::to_string(t.channels) + "-channel images but the data set has " +
                                    std::to_string(set.channels) + " channels");
    const auto n = size_t(t.channels);
    if (!t.normalization.mean.empty() && (t.normalization.mean.size() != n || t.normalization.std.size() != n))
        throw std::invalid_argument("normalisation needs one mean and one std per channel (" + std::to_string(n) + ")");
    for (float s : t.normalization.std)
        if (!(s > 0)) throw std::invalid_argument("normalisation std must be positive");
    if (!(t.augment.erase_probability >= 0 && t.augment.erase_probability <= 1))
        throw std::invalid_argument("the erasing probability must be in [0, 1]");
}

namespace {
// Python's round(): halves to even, as int(round(x)) in torchvision's get_params.
int64_t round_half_even(double x) { return int64_t(std::nearbyint(x)); }

double uniform(std::mt19937_64& rng, double low, double high) { return std::uniform_real_distribution<double>(low, high)(rng); }
int64_t uniform_int(std::mt19937_64& rng, int64_t low, int64_t high) {
    return std::uniform_int_distribution<int64_t>(low, high)(rng);
}
}  // namespace

CropBox random_resized_crop_box(int64_t height, int64_t width, std::mt19937_64& rng) {
    const double area = double(height * width), min_ratio = 3.0 / 4.0, max_ratio = 4.0 / 3.0;
    for (int attempt = 0; attempt < 10; ++attempt) {
        const double target_area = area * uniform(rng, 0.08, 1.0);
        const double aspect = std::exp(uniform(rng, std::log(min_ratio), std::log(max_ratio)));
        const int64_t w = round_half_even(std::sqrt(target_area * aspect));
        const int64_t h = round_half_even(std::sqrt(target_area / aspect));
        if (0 < w && w <= width && 0 < h && h <= height)
            return {uniform_int(rng, 0, height - h), uniform_int(rng, 0, width - w), h, w};
    }
    // The central crop, of the image's ratio clamped to [3/4, 4/3].
    const double in_ratio = double(width) / double(height);
    int64_t w = width, h = height;
    if (in_ratio < min_ratio) h = round_half_even(double(w) / min_ratio);
    else if (in_ratio > max_ratio) w = round_half_even(double(h) * max_ratio);
    return {(height - h) / 2, (width - w) / 2, h, w};
}

std::optional<CropBox> erasing_box(int64_t height, int64_t width, std::mt19937_64& rng) {
    const double area = double(height * width);
    for (int attempt = 0; attempt < 10; ++attempt) {
        const double erase_area = area * uniform(rng, 0.02, 0.33);
        const double aspect = std::exp(uniform(rng, std::log(0.3), std::log(3.3)));
        const int64_t h = round_half_even(std::sqrt(erase_area * aspect));
        const int64_t w = round_half_even(std::sqrt(erase_area / aspect));
        if (!(h < height && w < width)) continue;
        return CropBox{uniform_int(rng, 0, height - h), uniform_int(rng, 0, width - w), h, w};
    }
    return std::nullopt;
}

void crop_and_resize(uint8_t* out, int64_t size, const uint8_t* image, int64_t channels, int64_t height, int64_t width,
                     const CropBox& box, std::vector<uint8_t>& scratch) {
    if (box.top < 0 || box.left < 0 || box.height <= 0 || box.width <= 0 || box.top + box.height > height ||
        box.left + box.width > width)
        throw std::invalid_argument("the crop box is not inside the image");
    scratch.resize(size_t(channels * box.height * box.width));
    for (int64_t c = 0; c < channels; ++c)
        for (int64_t y = 0; y < box.height; ++y) {
            const uint8_t* row = image + (c * height + box.top + y) * width + box.left;
            std::copy(row, row + box.width, scratch.data() + (c * box.height + y) * box.width);
        }
    resize_bilinear(out, size, size, scratch.data(), channels, box.height, box.width);
}

void transform_image(float* out, const ImageSet& set, int64_t index, const Transform& t, std::mt19937_64& rng,
                     std::vector<uint8_t>& scratch) {
    const int64_t S = t.size, plane = S * S, src_c = set.channels;
    const Augment& a = t.augment;
    // (src_c, S, S) resized planes; 1 -> 3 channels repeats the plane when reading it below.
    const uint8_t* resized = set.image(index);
    if (a.crop == Crop::resized) {
        thread_local std::vector<uint8_t> crop;
        scratch.resize(size_t(src_c * plane));
        crop_and_resize(scratch.data(), S, set.image(index), src_c, set.height, set.width,
                        random_resized_crop_box(set.height, set.width, rng), crop);
        resized = scratch.data();
    } else if (set.height != S || set.width != S) {
        scratch.resize(size_t(src_c * plane));
        resize_bilinear(scratch.data(), S, S, set.image(index), src_c, set.height, set.width);
        resized = scratch.data();
    }

    int64_t shift_y = 0, shift_x = 0;  // the padded crop's offset from the padded image's centre
    if (a.crop == Crop::padded) {
        const int64_t pad = std::max<int64_t>(1, S / 8);
        shift_y = uniform_int(rng, -pad, pad), shift_x = uniform_int(rng, -pad, pad);
    }
    const bool flip = a.flip && uniform_int(rng, 0, 1) == 1;
    const bool normalize = !t.normalization.mean.empty();
    for (int64_t c = 0; c < t.channels; ++c) {
        const uint8_t* src = resized + (src_c == 1 ? 0 : c) * plane;
        const float mean_c = normalize ? t.normalization.mean[size_t(c)] : 0.0f;
        const float std_c = normalize ? t.normalization.std[size_t(c)] : 1.0f;
        float* dst = out + c * plane;
        for (int64_t y = 0; y < S; ++y) {
            const int64_t sy = y + shift_y;
            for (int64_t x = 0; x < S; ++x) {
                const int64_t sx = (flip ? S - 1 - x : x) + shift_x;
                // Outside the image is RandomCrop's zero padding, normalised like any pixel.
                const bool inside = sy >= 0 && sy < S && sx >= 0 && sx < S;
                const float value = inside ? float(src[sy * S + sx]) : 0.0f;
                // The same operations in the same order as ToTensor then Normalize, so the floats match.
                dst[y * S + x] = normalize ? (value / 255.0f - mean_c) / std_c : value / 255.0f;
            }
        }
    }
    // RandomErasing: `if torch.rand(1) < p`, then a box of the tensor set to 0 in every channel.
    if (a.erase_probability > 0 && uniform(rng, 0.0, 1.0) < a.erase_probability)
        if (const std::optional<CropBox> box = erasing_box(S, S, rng))
            for (int64_t c = 0; c < t.channels; ++c)
                for (int64_t y = box->top; y < box->top + box->height; ++y)
                    std::fill_n(out + (c * S + y) * S + box->left, box->width, 0.0f);
}

}  // namespace dn
