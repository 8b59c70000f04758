#include "data/datasets.h"

#include "data/idx.h"
#include "data/image_folder.h"

#include <filesystem>
#include <stdexcept>

namespace dn {

namespace {
namespace fs = std::filesystem;

// The IDX files may be gzipped, as distributed, or unpacked.
std::string idx_file(const std::string& dir, const std::string& stem) {
    for (const char* suffix : {".gz", ""}) {
        const std::string path = dir + "/" + stem + suffix;
        if (fs::exists(path)) return path;
    }
    throw std::runtime_error("missing '" + dir + "/" + stem + "[.gz]'");
}

ImageSet load_idx_split(const std::string& dir, Split split) {
    const std::string prefix = split == Split::train ? "train" : "t10k";
    return load_idx(idx_file(dir, prefix + "-images-idx3-ubyte"), idx_file(dir, prefix + "-labels-idx1-ubyte"));
}

std::string folder_split(const std::string& dir, Split split) {
    for (const char* name : split == Split::train ? std::vector<const char*>{"train"} : std::vector<const char*>{"test", "val"})
        if (fs::is_directory(fs::path(dir) / name)) return (fs::path(dir) / name).string();
    throw std::runtime_error("image folder '" + dir + "' has no " + (split == Split::train ? "train/" : "test/ (or val/)") +
                             " sub-folder (expected DIR/train/<class>/*.png and DIR/test/<class>/*.png)");
}
}  // namespace

const std::vector<std::string>& dataset_names() {
    static const std::vector<std::string> names{"cifar10", "fashion-mnist", "mnist", "folder"};
    return names;
}

std::string default_data_dir(const std::string& name) {
    if (name == "cifar10") return "data/cifar10";
    if (name == "fashion-mnist") return "/usr/share/datasets/fashion-mnist";
    if (name == "mnist") return "data/mnist";
    return "";
}

ImageSet load_dataset(const DatasetRequest& request, Split split) {
    const std::string dir = request.dir.empty() ? default_data_dir(request.name) : request.dir;
    if (request.name == "folder" && dir.empty()) throw std::invalid_argument("--dataset folder needs --data-dir");
    if (!fs::is_directory(dir)) throw std::runtime_error("data folder '" + dir + "' does not exist");
    if (request.name == "cifar10") return load_cifar10(dir, split);
    if (request.name == "fashion-mnist") {
        ImageSet set = load_idx_split(dir, split);
        set.class_names = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                           "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
        return set;
    }
    if (request.name == "mnist") {
        ImageSet set = load_idx_split(dir, split);
        for (int d = 0; d < 10; ++d) set.class_names.push_back(std::to_string(d));
        return set;
    }
    if (request.name == "folder") return load_image_folder(folder_split(dir, split), request.folder_size, request.folder_channels);
    throw std::invalid_argument("unknown data set '" + request.name + "' (cifar10, fashion-mnist, mnist, folder)");
}

}  // namespace dn
