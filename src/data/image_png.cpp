// PNG through libpng. libpng reports errors by longjmp, so each read runs in a function whose own
// locals are all trivially destructible (read_png), and what it produces lives in its caller's frame.
#include "data/image_codecs.h"

#include <png.h>

#include <algorithm>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <vector>

namespace dn::codec {
namespace {

constexpr size_t kReasonCapacity = 256;

struct MemorySource {
    const uint8_t* data;
    size_t size, position;
};

void read_from_memory(png_structp png, png_bytep out, size_t count) {
    auto* source = static_cast<MemorySource*>(png_get_io_ptr(png));
    if (count > source->size - source->position) png_error(png, "the file is truncated");
    std::memcpy(out, source->data + source->position, count);
    source->position += count;
}

[[noreturn]] void keep_error(png_structp png, png_const_charp message) {
    std::snprintf(static_cast<char*>(png_get_error_ptr(png)), kReasonCapacity, "%s", message);
    png_longjmp(png, 1);
}

// Warnings are about ancillary chunks (a bad CRC, an unknown profile) that PIL ignores as well.
void ignore_warning(png_structp, png_const_charp) {}

struct PngRead {
    ImageHeader header;
    std::vector<uint8_t>* interleaved = nullptr;  // nullptr: read the header only
    int64_t max_pixels = 0;
    bool too_many_pixels = false;
    bool grey16 = false;  // samples left 16-bit big-endian, for PIL's clipping
    char reason[kReasonCapacity] = {};
};

bool read_png(const uint8_t* data, size_t size, PngRead* read) {
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, read->reason, keep_error, ignore_warning);
    png_infop info = png ? png_create_info_struct(png) : nullptr;
    if (!info) {
        png_destroy_read_struct(&png, nullptr, nullptr);
        std::snprintf(read->reason, kReasonCapacity, "out of memory");
        return false;
    }
    MemorySource source{data, size, 0};
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, nullptr);
        return false;
    }
    png_set_read_fn(png, &source, read_from_memory);
    png_read_info(png, info);
    png_uint_32 width = 0, height = 0;
    int bit_depth = 0, color_type = 0;
    png_get_IHDR(png, info, &width, &height, &bit_depth, &color_type, nullptr, nullptr, nullptr);
    read->header = {ImageFormat::png, (color_type & PNG_COLOR_MASK_COLOR) ? 3 : 1, int64_t(height), int64_t(width)};
    read->too_many_pixels = int64_t(width) * int64_t(height) > read->max_pixels;
    if (!read->interleaved || read->too_many_pixels) {
        png_destroy_read_struct(&png, &info, nullptr);
        return true;
    }
    // PIL's modes: a palette gives its colours; grey of 1, 2 or 4 bits is scaled to 0..255;
    // alpha and tRNS are dropped by convert(); 16-bit samples keep their high byte ("RGB;16B"),
    // but 16-bit grey opens as 32-bit integers, which convert() clips.
    if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    png_set_strip_alpha(png);  // also the alpha that expanding a palette with tRNS adds
    read->grey16 = color_type == PNG_COLOR_TYPE_GRAY && bit_depth == 16;
    if (bit_depth == 16 && !read->grey16) png_set_strip_16(png);
    const int passes = png_set_interlace_handling(png);
    png_read_update_info(png, info);
    const size_t row_bytes = png_get_rowbytes(png, info);
    if (row_bytes != size_t(width) * size_t(read->header.channels) * (read->grey16 ? 2 : 1))
        png_error(png, "unexpected row size after conversion");
    read->interleaved->resize(row_bytes * height);
    for (int pass = 0; pass < passes; ++pass)  // Adam7 passes fill in the same rows
        for (png_uint_32 y = 0; y < height; ++y) png_read_row(png, read->interleaved->data() + y * row_bytes, nullptr);
    png_destroy_read_struct(&png, &info, nullptr);
    return true;
}

[[noreturn]] void fail(const std::string& name, const char* reason) {
    throw std::runtime_error("cannot decode image '" + name + "': " + reason);
}

}  // namespace

bool is_png(const uint8_t* data, size_t size) { return size >= 8 && png_sig_cmp(data, 0, 8) == 0; }

ImageHeader png_header(const uint8_t* data, size_t size, const std::string& name) {
    PngRead read;
    if (!read_png(data, size, &read)) fail(name, read.reason);
    return read.header;
}

DecodedImage decode_png(const uint8_t* data, size_t size, const std::string& name, int64_t max_pixels) {
    // The size is in IHDR, the first chunk, which libpng reads together with every chunk up to the
    // first IDAT: a bomb is refused from IHDR alone, before libpng reads (and allocates) anything.
    if (size >= 24 && std::memcmp(data + 12, "IHDR", 4) == 0) {
        auto be32 = [&](size_t at) { return int64_t(data[at]) << 24 | int64_t(data[at + 1]) << 16 | int64_t(data[at + 2]) << 8 | data[at + 3]; };
        // Compared by division: two 32-bit sizes multiply past int64 (the fuzzer found that overflow).
        const int64_t width = be32(16), height = be32(20);
        if (width > 0 && height > max_pixels / width) refuse_too_many_pixels(name, width, height);
    }
    std::vector<uint8_t> interleaved;
    PngRead read;
    read.interleaved = &interleaved;
    read.max_pixels = max_pixels;
    if (!read_png(data, size, &read)) fail(name, read.reason);
    if (read.too_many_pixels) refuse_too_many_pixels(name, read.header.width, read.header.height);
    if (!read.grey16) return to_planar(read.header, interleaved.data());
    const size_t count = interleaved.size() / 2;
    for (size_t i = 0; i < count; ++i)  // in place: byte i is written after bytes 2i and 2i+1 were read
        interleaved[i] = uint8_t(std::min(255, interleaved[2 * i] << 8 | interleaved[2 * i + 1]));
    return to_planar(read.header, interleaved.data());
}

}  // namespace dn::codec
