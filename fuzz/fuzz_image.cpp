// PNG and JPEG decoding, then what the loader does with a decoded image: the channel conversion
// and Pillow's bilinear resize.
#include "data/image_file.h"
#include "data/resize.h"

#include <stdexcept>
#include <vector>

// Decoding and resizing a large picture is correct but slow (seconds under ASan), and libFuzzer
// would call that a hang: pictures of more than 4 Mpixels are decoded only up to their header,
// where the reader's own size checks are.
constexpr int64_t kMaxFuzzPixels = int64_t(1) << 22;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace dn;
    try {
        const ImageHeader header = read_image_header(data, size, "fuzz image");
        const int64_t pixels = header.width * header.height;
        if (pixels > kMaxFuzzPixels && pixels <= kMaxImagePixels) return 0;
        const DecodedImage image = decode_image_memory(data, size, "fuzz image");
        for (int64_t channels : {1, 3}) {
            const DecodedImage converted = convert_channels(image, channels);
            for (int64_t out : {7, 32}) {
                std::vector<uint8_t> resized(size_t(channels * out * out));
                resize_bilinear(resized.data(), out, out, converted.pixels.data(), channels, converted.height, converted.width);
            }
        }
    } catch (const std::runtime_error&) {
    }
    return 0;
}
