// defines: DecodedImage, decode_image, decode_image_memory, convert_channels (PNG and JPEG via stb_image)
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace dn {

struct DecodedImage {
    int64_t channels = 0, height = 0, width = 0;
    std::vector<uint8_t> pixels;  // (channels, height, width), planar as ImageSet's
};

// PNG or JPEG (anything stb_image reads), 8 bits a sample. Grey and grey+alpha give 1 channel,
// RGB and RGBA 3: alpha is dropped, as PIL's convert("RGB") and convert("L") drop it. Throws
// std::runtime_error naming the file and stb's reason for a missing or undecodable one.
DecodedImage decode_image(const std::string& path);
DecodedImage decode_image_memory(const uint8_t* data, size_t size, const std::string& name_for_errors);

// 1 -> 3 repeats the plane; 3 -> 1 is PIL's convert("L"): (R*19595 + G*38470 + B*7471 + 2^15) >> 16,
// the ITU-R 601-2 weights .299/.587/.114 in 16-bit fixed point. Throws std::invalid_argument for
// other channel counts.
DecodedImage convert_channels(const DecodedImage& image, int64_t channels);

}  // namespace dn
