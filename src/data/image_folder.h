// defines: load_image_folder (torchvision's ImageFolder layout: one sub-folder of images per class)
#pragma once
#include "data/image_set.h"

#include <cstdint>
#include <string>

namespace dn {

// Classes are root's sub-folders, sorted by name, labelled 0, 1, ... in that order. A class's
// images are its .png, .jpg and .jpeg files (any case), nested folders included, ordered as
// torchvision orders them (folders by path, then files by name), so sample i is torchvision's
// sample i. Each is decoded, converted to `channels` (1 or 3, see convert_channels) and resized
// to size x size as PIL's bilinear resize does. Throws std::runtime_error for a missing root,
// no class folders, a class without images, or a file that doesn't decode (naming it), and
// std::invalid_argument for a bad size or channel count.
ImageSet load_image_folder(const std::string& root, int64_t size, int64_t channels);

}  // namespace dn
