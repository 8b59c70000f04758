// defines: Crop, Augment, Normalization, Transform, CropBox, random_resized_crop_box,
//          erasing_box, crop_and_resize, transform_image (one image: uint8 set -> float tensor), parse_augment
#pragma once
#include "data/image_set.h"

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace dn {

// padded: RandomCrop(size, padding=size/8) after the resize (the usual CIFAR recipe, padding 4 at
// 32x32). resized: RandomResizedCrop(size) in place of the resize: a box of 8% to 100% of the
// image's area, aspect ratio 3/4 to 4/3, resized (bilinear, as PIL) to size.
enum class Crop { none, padded, resized };

// torchvision's transforms, in their usual order: the crop, RandomHorizontalFlip(), ToTensor,
// Normalize, then RandomErasing(p=erase_probability, value=0) (Cutout).
struct Augment {
    Crop crop = Crop::none;
    bool flip = false;
    double erase_probability = 0.0;
};

// "none", or a comma list of crop (padded), resized-crop, flip, erase (p 0.5); "flip-crop" is
// crop,flip. Throws std::invalid_argument naming the choices.
Augment parse_augment(const std::string& text);

// Normalize(mean, std) after ToTensor; empty means none (the lecture uses none).
struct Normalization {
    std::vector<float> mean, std;
};

struct Transform {
    int64_t size = 224;      // output height = width (bilinear resize, as PIL)
    int64_t channels = 3;    // grey images are repeated to 3 channels when the model has 3
    Augment augment;
    Normalization normalization;
};

// A box of an image: top, left, height, width.
struct CropBox {
    int64_t top = 0, left = 0, height = 0, width = 0;
};

// torchvision's RandomResizedCrop.get_params(scale=(0.08, 1), ratio=(3/4, 4/3)) on a height x
// width image: ten tries at a random area and log-uniform aspect ratio, then the central crop
// of the nearest allowed ratio.
CropBox random_resized_crop_box(int64_t height, int64_t width, std::mt19937_64& rng);
// RandomErasing.get_params(scale=(0.02, 0.33), ratio=(0.3, 3.3)): ten tries; nothing when none fits.
std::optional<CropBox> erasing_box(int64_t height, int64_t width, std::mt19937_64& rng);

// PIL's crop of box, then its bilinear resize to size x size, as torchvision's F.resized_crop on a
// PIL image: image (channels, height, width) -> out (channels, size, size). scratch holds the crop.
void crop_and_resize(uint8_t* out, int64_t size, const uint8_t* image, int64_t channels, int64_t height, int64_t width,
                     const CropBox& box, std::vector<uint8_t>& scratch);

// Resize (or the resized crop) -> channels -> [padded crop, flip] -> ToTensor -> Normalize ->
// [erasing], into out (channels, size, size). scratch is reused between calls so a loader thread
// never allocates per image once it has seen the largest.
void transform_image(float* out, const ImageSet& set, int64_t index, const Transform& transform, std::mt19937_64& rng,
                     std::vector<uint8_t>& scratch);

// Checks the transform against the set: channel counts that can't be converted, a bad
// normalisation length, a zero size. Throws std::invalid_argument.
void validate(const Transform& transform, const ImageSet& set);

}  // namespace dn
