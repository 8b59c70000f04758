// JPEG through libjpeg-turbo, the library PIL decodes with: with its default settings (ISLOW IDCT,
// fancy upsampling), as PIL's, the pixels are PIL's exactly. libjpeg reports errors by longjmp,
// so each read runs in a function whose own locals are all trivially destructible (read_jpeg),
// and what it produces lives in its caller's frame.
#include "data/image_codecs.h"

#include <cstdio>  // before jpeglib.h, which needs FILE
#include <jerror.h>
#include <jpeglib.h>

#include <algorithm>
#include <csetjmp>
#include <cstring>
#include <stdexcept>
#include <vector>

namespace dn::codec {
namespace {

// A progressive JPEG of a few kilobytes can hold thousands of tiny scans and take minutes to
// decode; libjpeg-turbo's own TJFLAG_LIMITSCANS stops at 500, as this does. Real files have ~10.
constexpr int kMaxScans = 500;

struct JpegErrors {
    jpeg_error_mgr manager;  // first, so that libjpeg's pointer to it is a pointer to this
    std::jmp_buf jump;
    char reason[JMSG_LENGTH_MAX];
};

[[noreturn]] void keep_error(j_common_ptr cinfo) {
    auto* errors = reinterpret_cast<JpegErrors*>(cinfo->err);
    cinfo->err->format_message(cinfo, errors->reason);
    std::longjmp(errors->jump, 1);
}

// libjpeg decodes a file that ends early as far as it goes, pads the rest with grey and warns;
// PIL refuses it ("image file is truncated"), and so does this. Other warnings (extraneous bytes
// before a marker, ...) PIL ignores, and so does this.
void on_message(j_common_ptr cinfo, int level) {
    if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) keep_error(cinfo);
}

void limit_scans(j_common_ptr cinfo) {
    if (reinterpret_cast<j_decompress_ptr>(cinfo)->input_scan_number <= kMaxScans) return;
    auto* errors = reinterpret_cast<JpegErrors*>(cinfo->err);
    std::snprintf(errors->reason, sizeof errors->reason, "more than %d progressive scans", kMaxScans);
    std::longjmp(errors->jump, 1);
}

struct JpegRead {
    ImageHeader header;
    std::vector<uint8_t>* interleaved = nullptr;  // nullptr: read the header only
    int64_t max_pixels = 0;
    bool too_many_pixels = false;
    bool cmyk = false;  // samples are 4 a pixel, CMYK as stored
    JpegErrors errors;
};

bool read_jpeg(const uint8_t* data, size_t size, JpegRead* read) {
    jpeg_decompress_struct cinfo;
    std::memset(&cinfo, 0, sizeof cinfo);  // so that jpeg_destroy_decompress is safe whenever it runs
    cinfo.err = jpeg_std_error(&read->errors.manager);
    read->errors.manager.error_exit = keep_error;
    read->errors.manager.emit_message = on_message;
    jpeg_progress_mgr progress{};
    progress.progress_monitor = limit_scans;
    if (setjmp(read->errors.jump)) {
        jpeg_destroy_decompress(&cinfo);
        return false;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, data, static_cast<unsigned long>(size));
    jpeg_read_header(&cinfo, TRUE);  // TRUE: a file of tables only is an error
    int64_t channels = 3;
    switch (cinfo.jpeg_color_space) {
        case JCS_GRAYSCALE: cinfo.out_color_space = JCS_GRAYSCALE, channels = 1; break;
        case JCS_YCbCr:
        case JCS_RGB: cinfo.out_color_space = JCS_RGB; break;
        case JCS_CMYK:
        case JCS_YCCK: cinfo.out_color_space = JCS_CMYK, read->cmyk = true; break;
        default:
            std::snprintf(read->errors.reason, sizeof read->errors.reason, "%d colour components, which PIL does not read either",
                          cinfo.num_components);
            jpeg_destroy_decompress(&cinfo);
            return false;
    }
    read->header = {ImageFormat::jpeg, channels, int64_t(cinfo.image_height), int64_t(cinfo.image_width)};
    read->too_many_pixels = int64_t(cinfo.image_width) * int64_t(cinfo.image_height) > read->max_pixels;
    if (!read->interleaved || read->too_many_pixels) {
        jpeg_destroy_decompress(&cinfo);
        return true;
    }
    cinfo.progress = &progress;
    jpeg_start_decompress(&cinfo);
    const size_t row_bytes = size_t(cinfo.output_width) * size_t(cinfo.output_components);
    read->interleaved->resize(row_bytes * cinfo.output_height);
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = read->interleaved->data() + size_t(cinfo.output_scanline) * row_bytes;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    // Not jpeg_finish_decompress: what follows the last scan line up to EOI does not matter to PIL.
    jpeg_destroy_decompress(&cinfo);
    return true;
}

[[noreturn]] void fail(const std::string& name, const char* reason) {
    throw std::runtime_error("cannot decode image '" + name + "': " + reason);
}

// PIL opens a 4-component JPEG as Adobe writes it, inverted ("CMYK;I"), and its convert("RGB")
// is cmyk2rgb in Pillow's Convert.c: each of R, G, B is (255 - K) - C * (255 - K) / 255, rounded
// by MULDIV255.
void cmyk_to_rgb(std::vector<uint8_t>& samples, int64_t pixels) {
    auto muldiv255 = [](int a, int b) {
        const int t = a * b + 128;
        return ((t >> 8) + t) >> 8;
    };
    for (int64_t p = 0; p < pixels; ++p) {
        const uint8_t* in = samples.data() + 4 * p;  // read ahead of the write at 3p
        const int not_k = in[3];                     // 255 - (255 - stored K)
        int rgb[3];
        for (int c = 0; c < 3; ++c) rgb[c] = std::clamp(not_k - muldiv255(255 - in[c], not_k), 0, 255);
        for (int c = 0; c < 3; ++c) samples[size_t(3 * p + c)] = uint8_t(rgb[c]);
    }
}

}  // namespace

bool is_jpeg(const uint8_t* data, size_t size) { return size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF; }

ImageHeader jpeg_header(const uint8_t* data, size_t size, const std::string& name) {
    JpegRead read;
    if (!read_jpeg(data, size, &read)) fail(name, read.errors.reason);
    return read.header;
}

DecodedImage decode_jpeg(const uint8_t* data, size_t size, const std::string& name, int64_t max_pixels) {
    std::vector<uint8_t> interleaved;
    JpegRead read;
    read.interleaved = &interleaved;
    read.max_pixels = max_pixels;
    if (!read_jpeg(data, size, &read)) fail(name, read.errors.reason);
    if (read.too_many_pixels) refuse_too_many_pixels(name, read.header.width, read.header.height);
    if (read.cmyk) cmyk_to_rgb(interleaved, read.header.height * read.header.width);
    return to_planar(read.header, interleaved.data());
}

}  // namespace dn::codec
