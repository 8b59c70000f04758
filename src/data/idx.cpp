#include "data/idx.h"

#include <zlib.h>

#include <memory>
#include <stdexcept>

namespace dn {

namespace {
// gzread reads gzipped and plain files alike.
std::vector<uint8_t> read_all(const std::string& path) {
    std::unique_ptr<gzFile_s, int (*)(gzFile)> f(gzopen(path.c_str(), "rb"), gzclose);
    if (!f) throw std::runtime_error("cannot open '" + path + "'");
    std::vector<uint8_t> data;
    uint8_t buf[1 << 16];
    for (;;) {
        int n = gzread(f.get(), buf, sizeof buf);
        if (n < 0) throw std::runtime_error("'" + path + "' is corrupt (gzip error)");
        if (n == 0) break;
        data.insert(data.end(), buf, buf + n);
    }
    return data;
}

uint32_t big_endian(const std::vector<uint8_t>& d, size_t at) {
    return uint32_t(d[at]) << 24 | uint32_t(d[at + 1]) << 16 | uint32_t(d[at + 2]) << 8 | uint32_t(d[at + 3]);
}
}  // namespace

ImageSet load_idx(const std::string& images_path, const std::string& labels_path) {
    std::vector<uint8_t> images = read_all(images_path), labels = read_all(labels_path);
    auto bad = [](const std::string& path, const std::string& why) {
        return std::runtime_error("'" + path + "' is not a valid IDX file: " + why);
    };
    if (images.size() < 16 || big_endian(images, 0) != 0x00000803) throw bad(images_path, "expected an idx3-ubyte image file");
    if (labels.size() < 8 || big_endian(labels, 0) != 0x00000801) throw bad(labels_path, "expected an idx1-ubyte label file");
    ImageSet set;
    set.count = big_endian(images, 4);
    set.channels = 1;
    set.height = big_endian(images, 8);
    set.width = big_endian(images, 12);
    // Bounded before they are multiplied, so that a corrupt header cannot overflow the sizes.
    if (set.height == 0 || set.width == 0 || set.height > 65535 || set.width > 65535)
        throw bad(images_path, "implausible image size " + std::to_string(set.height) + "x" + std::to_string(set.width));
    const size_t image_bytes = size_t(set.height) * size_t(set.width);
    if ((images.size() - 16) / image_bytes != size_t(set.count) || (images.size() - 16) % image_bytes != 0)
        throw bad(images_path, "its size does not match its header (truncated?)");
    if (big_endian(labels, 4) != uint32_t(set.count)) throw bad(labels_path, "its count differs from the image file's");
    if (labels.size() != 8 + size_t(set.count)) throw bad(labels_path, "its size does not match its header (truncated?)");
    set.pixels.assign(images.begin() + 16, images.end());
    set.labels.assign(labels.begin() + 8, labels.end());
    return set;
}

}  // namespace dn
