// defines: ImageSet (uint8 images and labels in memory), load_idx (MNIST / Fashion-MNIST IDX files)
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace dn {

struct ImageSet {
    int64_t count = 0, channels = 0, height = 0, width = 0;
    std::vector<uint8_t> pixels;  // (count, channels, height, width), as the files store them
    std::vector<int32_t> labels;  // (count)

    // Images [first, first + n) as floats in [0,1] (ToTensor), (n, channels, height, width).
    void to_tensor(float* out, int64_t first, int64_t n) const;
};

// Reads an idx3 image file and its idx1 label file, gzipped or raw. Throws std::runtime_error
// naming the file for a missing, truncated or malformed one, or counts that disagree.
ImageSet load_idx(const std::string& images_path, const std::string& labels_path);

}  // namespace dn
