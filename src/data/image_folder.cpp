#include "data/image_folder.h"

#include "data/image_file.h"
#include "data/resize.h"

#include <algorithm>
#include <cctype>
#include <exception>
#include <filesystem>
#include <stdexcept>

namespace dn {

namespace fs = std::filesystem;

namespace {
bool is_image_name(std::string name) {
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return char(std::tolower(c)); });
    return name.ends_with(".png") || name.ends_with(".jpg") || name.ends_with(".jpeg");
}

// torchvision walks sorted(os.walk(class_dir, followlinks=True)) and sorts each folder's file
// names: folders in order of their path string, then files by name. std::string compares bytes
// as unsigned, which is Python's code point order for UTF-8 names.
std::vector<std::string> class_images(const fs::path& dir) {
    std::vector<std::string> folders{dir.string()};
    for (const auto& e : fs::recursive_directory_iterator(dir, fs::directory_options::follow_directory_symlink))
        if (e.is_directory()) folders.push_back(e.path().string());
    std::sort(folders.begin(), folders.end());
    std::vector<std::string> images;
    for (const auto& folder : folders) {
        std::vector<std::string> names;
        for (const auto& e : fs::directory_iterator(folder))
            if (!e.is_directory() && is_image_name(e.path().filename().string())) names.push_back(e.path().filename().string());
        std::sort(names.begin(), names.end());
        for (const auto& n : names) images.push_back((fs::path(folder) / n).string());
    }
    return images;
}
}  // namespace

ImageSet load_image_folder(const std::string& root, int64_t size, int64_t channels) {
    if (size < 1) throw std::invalid_argument("image folder '" + root + "': size must be positive, got " + std::to_string(size));
    if (channels != 1 && channels != 3)
        throw std::invalid_argument("image folder '" + root + "': channels must be 1 or 3, got " + std::to_string(channels));
    if (!fs::is_directory(root)) throw std::runtime_error("image folder '" + root + "' does not exist or is not a folder");

    ImageSet set;
    for (const auto& e : fs::directory_iterator(root))
        if (e.is_directory()) set.class_names.push_back(e.path().filename().string());
    std::sort(set.class_names.begin(), set.class_names.end());
    if (set.class_names.empty()) throw std::runtime_error("image folder '" + root + "' has no class sub-folders");

    std::vector<std::string> paths;
    for (size_t label = 0; label < set.class_names.size(); ++label) {
        const fs::path dir = fs::path(root) / set.class_names[label];
        std::vector<std::string> images = class_images(dir);
        if (images.empty())
            throw std::runtime_error("image folder '" + root + "': class folder '" + dir.string() + "' holds no .png, .jpg or .jpeg files");
        paths.insert(paths.end(), images.begin(), images.end());
        set.labels.insert(set.labels.end(), images.size(), int32_t(label));
    }

    set.count = int64_t(paths.size());
    set.channels = channels;
    set.height = set.width = size;
    set.pixels.resize(size_t(set.count * set.image_bytes()));
    // Decoding dominates; exceptions can't cross an OpenMP region, so each is kept and the
    // first in sample order rethrown.
    std::vector<std::exception_ptr> errors(paths.size());
#pragma omp parallel for schedule(dynamic)
    for (int64_t i = 0; i < set.count; ++i) {
        try {
            const DecodedImage img = convert_channels(decode_image(paths[size_t(i)]), channels);
            resize_bilinear(set.pixels.data() + i * set.image_bytes(), size, size, img.pixels.data(), channels, img.height,
                            img.width);
        } catch (...) {
            errors[size_t(i)] = std::current_exception();
        }
    }
    for (const auto& e : errors)
        if (e) std::rethrow_exception(e);
    return set;
}

}  // namespace dn
