#include "data/transform.h"

#include "data/resize.h"

#include <stdexcept>
#include <string>

namespace dn {

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
}

void transform_image(float* out, const ImageSet& set, int64_t index, const Transform& t, std::mt19937_64& rng,
                     std::vector<uint8_t>& scratch) {
    const int64_t S = t.size, plane = S * S, src_c = set.channels;
    // (src_c, S, S) resized planes; 1 -> 3 channels repeats the plane when reading it below.
    const uint8_t* resized = set.image(index);
    if (set.height != S || set.width != S) {
        scratch.resize(size_t(src_c * plane));
        resize_bilinear(scratch.data(), S, S, set.image(index), src_c, set.height, set.width);
        resized = scratch.data();
    }

    int64_t shift_y = 0, shift_x = 0;  // the crop window's offset from the padded image's centre
    bool flip = false;
    if (t.augment == Augment::flip_crop) {
        const int64_t pad = std::max<int64_t>(1, S / 8);
        std::uniform_int_distribution<int64_t> offset(-pad, pad);
        shift_y = offset(rng), shift_x = offset(rng);
        flip = std::uniform_int_distribution<int>(0, 1)(rng) == 1;
    }
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
}

}  // namespace dn
