#include "data/image_file.h"

#include <stb_image.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <memory>
#include <stdexcept>
#include <string>

namespace dn {

DecodedImage decode_image(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw std::runtime_error("cannot open image '" + path + "'");
    std::vector<uint8_t> data((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    if (f.bad()) throw std::runtime_error("cannot read image '" + path + "'");
    return decode_image_memory(data.data(), data.size(), path);
}

DecodedImage decode_image_memory(const uint8_t* data, size_t size, const std::string& name_for_errors) {
    auto fail = [&] {
        const char* why = stbi_failure_reason();  // thread-local in Debian's stb
        return std::runtime_error("cannot decode image '" + name_for_errors + "': " + (why ? why : "unknown reason"));
    };
    if (size > size_t(INT32_MAX)) throw std::runtime_error("image '" + name_for_errors + "' is larger than 2 GB");
    int w = 0, h = 0, in_file = 0;
    if (!stbi_info_from_memory(data, int(size), &w, &h, &in_file)) throw fail();
    // A few bytes of header can claim a picture of gigabytes. PIL refuses images above twice its
    // MAX_IMAGE_PIXELS (DecompressionBombError); so does this reader, before decoding.
    constexpr int64_t kMaxPixels = 2 * 89'478'485;
    if (w <= 0 || h <= 0) throw std::runtime_error("image '" + name_for_errors + "' has no pixels");
    if (int64_t(w) * int64_t(h) > kMaxPixels)
        throw std::runtime_error("image '" + name_for_errors + "' claims " + std::to_string(w) + "x" + std::to_string(h) +
                                 " pixels, more than PIL's decompression-bomb limit; not decoded");
    // stb drops alpha itself when asked for fewer channels: grey+alpha -> grey, RGBA -> RGB.
    const int want = in_file <= 2 ? 1 : 3;
    std::unique_ptr<stbi_uc, void (*)(void*)> interleaved(stbi_load_from_memory(data, int(size), &w, &h, &in_file, want),
                                                          stbi_image_free);
    if (!interleaved) throw fail();
    DecodedImage img;
    img.channels = want;
    img.height = h;
    img.width = w;
    const int64_t plane = img.height * img.width;
    img.pixels.resize(size_t(want * plane));
    for (int64_t p = 0; p < plane; ++p)  // (h, w, want) -> (want, h, w)
        for (int64_t c = 0; c < want; ++c) img.pixels[size_t(c * plane + p)] = interleaved.get()[p * want + c];
    return img;
}

DecodedImage convert_channels(const DecodedImage& image, int64_t channels) {
    if (image.channels == channels) return image;
    DecodedImage out;
    out.channels = channels;
    out.height = image.height;
    out.width = image.width;
    const size_t plane = size_t(image.height * image.width);
    const uint8_t* in = image.pixels.data();
    if (image.channels == 1 && channels == 3) {
        out.pixels.resize(3 * plane);
        for (size_t c = 0; c < 3; ++c) std::copy(in, in + plane, out.pixels.begin() + std::ptrdiff_t(c * plane));
    } else if (image.channels == 3 && channels == 1) {
        out.pixels.resize(plane);
        const uint8_t *r = in, *g = in + plane, *b = in + 2 * plane;
        for (size_t p = 0; p < plane; ++p)
            out.pixels[p] = uint8_t((uint32_t(r[p]) * 19595 + uint32_t(g[p]) * 38470 + uint32_t(b[p]) * 7471 + 0x8000) >> 16);
    } else {
        throw std::invalid_argument("cannot convert an image with " + std::to_string(image.channels) + " channels to " +
                                    std::to_string(channels));
    }
    return out;
}

}  // namespace dn
