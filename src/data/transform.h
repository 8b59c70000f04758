// defines: Augment, Normalization, Transform, transform_image (one image: uint8 set -> float tensor)
#pragma once
#include "data/image_set.h"

#include <cstdint>
#include <random>
#include <vector>

namespace dn {

// flip_crop: torchvision's RandomCrop(size, padding=size/8) then RandomHorizontalFlip(), the
// usual CIFAR recipe (padding 4 at 32x32), after the resize.
enum class Augment { none, flip_crop };

// Normalize(mean, std) after ToTensor; empty means none (the lecture uses none).
struct Normalization {
    std::vector<float> mean, std;
};

struct Transform {
    int64_t size = 224;      // output height = width (bilinear resize, as PIL)
    int64_t channels = 3;    // grey images are repeated to 3 channels when the model has 3
    Augment augment = Augment::none;
    Normalization normalization;
};

// Resize -> channels -> [crop, flip] -> ToTensor -> Normalize, into out (channels, size, size).
// scratch is reused between calls so a loader thread never allocates per image.
void transform_image(float* out, const ImageSet& set, int64_t index, const Transform& transform, std::mt19937_64& rng,
                     std::vector<uint8_t>& scratch);

// Checks the transform against the set: channel counts that can't be converted, a bad
// normalisation length, a zero size. Throws std::invalid_argument.
void validate(const Transform& transform, const ImageSet& set);

}  // namespace dn
