// defines: DecodedImage, ImageHeader, read_image_header, decode_image, decode_image_memory, convert_channels
// (PNG through libpng, JPEG through libjpeg-turbo: the libraries PIL decodes with, kept for untrusted input)
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

enum class ImageFormat { png, jpeg };

// What a file's header says, before any pixel is decoded: channels as decode_image gives them.
struct ImageHeader {
    ImageFormat format = ImageFormat::png;
    int64_t channels = 0, height = 0, width = 0;
};

// Above this many pixels an image is refused before decoding: PIL's decompression-bomb limit
// (twice its MAX_IMAGE_PIXELS, where PIL raises DecompressionBombError).
constexpr int64_t kMaxImagePixels = 2 * 89'478'485;

// Throws std::runtime_error naming the file and the reason for bytes that are neither PNG nor JPEG
// or whose header is broken. Does not apply kMaxImagePixels.
ImageHeader read_image_header(const uint8_t* data, size_t size, const std::string& name_for_errors);

// PNG or JPEG to 8 bits a sample, pixel for pixel as PIL's Image.open(...).convert("RGB" or "L"),
// which torchvision's loader calls:
// - grey (any depth) and grey+alpha give 1 channel; RGB, RGBA, palette and CMYK give 3;
// - alpha and tRNS are dropped, as convert("RGB") and convert("L") drop them;
// - 16-bit samples keep their high byte, but for 16-bit grey, which PIL opens as 32-bit integers
//   and clips to 0..255;
// - CMYK JPEGs are read as Adobe writes them (inverted) and turned to RGB by PIL's formula.
// Throws std::runtime_error naming the file and the library's reason for a missing, truncated or
// undecodable one, and for one of more than kMaxImagePixels pixels.
DecodedImage decode_image(const std::string& path);
DecodedImage decode_image_memory(const uint8_t* data, size_t size, const std::string& name_for_errors);

// 1 -> 3 repeats the plane; 3 -> 1 is PIL's convert("L"): (R*19595 + G*38470 + B*7471 + 2^15) >> 16,
// the ITU-R 601-2 weights .299/.587/.114 in 16-bit fixed point. Throws std::invalid_argument for
// other channel counts.
DecodedImage convert_channels(const DecodedImage& image, int64_t channels);

}  // namespace dn
