// PNG and JPEG decoding, then what the loader does with a decoded image: the channel conversion
// and Pillow's bilinear resize.
#include "data/image_file.h"
#include "data/resize.h"

#include <stdexcept>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace dn;
    try {
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
