// defines: the PNG and JPEG decoders behind data/image_file.h (private to data/)
#pragma once
#include "data/image_file.h"

#include <cstddef>
#include <cstdint>
#include <string>

namespace dn::codec {

bool is_png(const uint8_t* data, size_t size);
bool is_jpeg(const uint8_t* data, size_t size);

// Each throws std::runtime_error("cannot decode image 'NAME': REASON") on a broken file. The
// decoders check the pixel count against max_pixels after the header and before allocating.
ImageHeader png_header(const uint8_t* data, size_t size, const std::string& name);
DecodedImage decode_png(const uint8_t* data, size_t size, const std::string& name, int64_t max_pixels);
ImageHeader jpeg_header(const uint8_t* data, size_t size, const std::string& name);
DecodedImage decode_jpeg(const uint8_t* data, size_t size, const std::string& name, int64_t max_pixels);

// (height, width, channels) samples, as the libraries give them, to DecodedImage's planar layout.
DecodedImage to_planar(const ImageHeader& header, const uint8_t* interleaved);

// The one message for an image over the decompression-bomb limit.
[[noreturn]] void refuse_too_many_pixels(const std::string& name, int64_t width, int64_t height);

}  // namespace dn::codec
