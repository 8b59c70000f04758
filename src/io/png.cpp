#include "io/png.h"

#include "io/atomic_file.h"

#include <png.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace dn {

void write_png(const std::string& path, const uint8_t* pixels, int64_t height, int64_t width, int64_t channels) {
    if (channels != 1 && channels != 3)
        throw std::invalid_argument("cannot write '" + path + "': a PNG here has 1 or 3 channels, not " +
                                    std::to_string(channels));
    if (height <= 0 || width <= 0 || height > 0x7fffffff || width > 0x7fffffff)
        throw std::invalid_argument("cannot write '" + path + "': bad size " + std::to_string(height) + "x" +
                                    std::to_string(width));

    // libpng's simplified API reports errors through image.message instead of longjmp, which
    // would skip C++ destructors.
    png_image image;
    std::memset(&image, 0, sizeof image);
    image.version = PNG_IMAGE_VERSION;
    image.width = png_uint_32(width);
    image.height = png_uint_32(height);
    image.format = channels == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY;

    AtomicFile out(path);
    std::FILE* file = std::fopen(out.temp_path().c_str(), "wb");
    if (!file) throw std::runtime_error("cannot write '" + path + "': " + std::strerror(errno));
    const bool encoded = png_image_write_to_stdio(&image, file, 0, pixels, 0, nullptr) != 0;
    const bool closed = std::fclose(file) == 0;
    if (!encoded || !closed)
        throw std::runtime_error("failed while writing '" + path + "': " +
                                 (encoded ? std::string("disk full?") : std::string(image.message)));
    out.commit();
}

}  // namespace dn
