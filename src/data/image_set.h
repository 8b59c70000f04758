// defines: ImageSet (a labelled data set of equally sized uint8 images, in memory)
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace dn {

// Every loader (IDX, CIFAR-10, image folders) produces one of these. The images stay uint8 in
// memory (a 224x224 CIFAR-10 in float would be 30 GB); the batch loader resizes and converts
// them on the fly.
struct ImageSet {
    int64_t count = 0, channels = 0, height = 0, width = 0;
    std::vector<uint8_t> pixels;            // (count, channels, height, width), planar as PyTorch's tensors
    std::vector<int32_t> labels;            // (count), each in [0, class_names.size())
    std::vector<std::string> class_names;   // index -> name

    int64_t image_bytes() const { return channels * height * width; }
    const uint8_t* image(int64_t i) const { return pixels.data() + size_t(i * image_bytes()); }

    // Images [first, first + n) as floats in [0,1] (ToTensor), (n, channels, height, width).
    void to_tensor(float* out, int64_t first, int64_t n) const;
};

}  // namespace dn
