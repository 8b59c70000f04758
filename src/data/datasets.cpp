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

// MNIST and Fashion-MNIST have ten classes; a label outside them is a corrupt file, reported now
// rather than by the loss in the middle of training.
ImageSet load_idx_split(const std::string& dir, Split split, std::vector<std::string> class_names) {
    const std::string prefix = split == Split::train ? "train" : "t10k";
    const std::string labels = idx_file(dir, prefix + "-labels-idx1-ubyte");
    ImageSet set = load_idx(idx_file(dir, prefix + "-images-idx3-ubyte"), labels);
    for (size_t i = 0; i < set.labels.size(); ++i)
        if (set.labels[i] < 0 || size_t(set.labels[i]) >= class_names.size())
            throw std::runtime_error("'" + labels + "' is corrupt: image " + std::to_string(i) + " has label " +
                                     std::to_string(set.labels[i]) + " (expected 0..9)");
    set.class_names = std::move(class_names);
    return set;
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
    if (request.name == "fashion-mnist")
        return load_idx_split(dir, split, {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                                           "Sneaker", "Bag", "Ankle boot"});
    if (request.name == "mnist") return load_idx_split(dir, split, {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"});
    if (request.name == "folder") return load_image_folder(folder_split(dir, split), request.folder_size, request.folder_channels);
    throw std::invalid_argument("unknown data set '" + request.name + "' (cifar10, fashion-mnist, mnist, folder)");
}

}  // namespace dn
