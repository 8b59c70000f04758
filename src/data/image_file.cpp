#include "data/image_file.h"

#include "data/image_codecs.h"

#include <algorithm>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>

namespace dn {

namespace codec {

void refuse_too_many_pixels(const std::string& name, int64_t width, int64_t height) {
    throw std::runtime_error("image '" + name + "' claims " + std::to_string(width) + "x" + std::to_string(height) +
                             " pixels, more than PIL's decompression-bomb limit; not decoded");
}

DecodedImage to_planar(const ImageHeader& header, const uint8_t* interleaved) {
    DecodedImage image;
    image.channels = header.channels;
    image.height = header.height;
    image.width = header.width;
    const int64_t plane = header.height * header.width, channels = header.channels;
    image.pixels.resize(size_t(channels * plane));
    for (int64_t p = 0; p < plane; ++p)
        for (int64_t c = 0; c < channels; ++c) image.pixels[size_t(c * plane + p)] = interleaved[p * channels + c];
    return image;
}

}  // namespace codec

namespace {

[[noreturn]] void refuse_unknown_format(const std::string& name) {
    throw std::runtime_error("cannot decode image '" + name + "': not a PNG or JPEG file");
}

}  // namespace

ImageHeader read_image_header(const uint8_t* data, size_t size, const std::string& name_for_errors) {
    if (codec::is_png(data, size)) return codec::png_header(data, size, name_for_errors);
    if (codec::is_jpeg(data, size)) return codec::jpeg_header(data, size, name_for_errors);
    refuse_unknown_format(name_for_errors);
}

DecodedImage decode_image(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw std::runtime_error("cannot open image '" + path + "'");
    std::vector<uint8_t> data((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    if (f.bad()) throw std::runtime_error("cannot read image '" + path + "'");
    return decode_image_memory(data.data(), data.size(), path);
}

DecodedImage decode_image_memory(const uint8_t* data, size_t size, const std::string& name_for_errors) {
    if (codec::is_png(data, size)) return codec::decode_png(data, size, name_for_errors, kMaxImagePixels);
    if (codec::is_jpeg(data, size)) return codec::decode_jpeg(data, size, name_for_errors, kMaxImagePixels);
    refuse_unknown_format(name_for_errors);
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
