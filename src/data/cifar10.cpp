#include "data/cifar10.h"

#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace dn {

namespace {
constexpr int64_t kSide = 32, kChannels = 3;
constexpr int64_t kImageBytes = kChannels * kSide * kSide, kRecordBytes = 1 + kImageBytes;

std::string batches_dir(const std::string& dir) {
    namespace fs = std::filesystem;
    if (fs::exists(fs::path(dir) / "test_batch.bin") || fs::exists(fs::path(dir) / "data_batch_1.bin")) return dir;
    const fs::path nested = fs::path(dir) / "cifar-10-batches-bin";
    if (fs::is_directory(nested)) return nested.string();
    throw std::runtime_error("no CIFAR-10 files in '" + dir +
                             "' (expected data_batch_1..5.bin and test_batch.bin, or cifar-10-batches-bin/; "
                             "--download fetches them)");
}

void append_batch_file(ImageSet& set, const std::string& path) {
    std::ifstream in(path, std::ios::binary | std::ios::ate);
    if (!in) throw std::runtime_error("cannot open CIFAR-10 file '" + path + "'");
    const auto size = int64_t(in.tellg());
    // The real files hold 10000 records each; any whole number is accepted, so that small test
    // sets in the same format work too.
    if (size == 0 || size % kRecordBytes != 0)
        throw std::runtime_error("'" + path + "' is not a CIFAR-10 batch: " + std::to_string(size) +
                                 " bytes is not a whole number of 3073-byte records (truncated?)");
    const int64_t records = size / kRecordBytes;
    std::vector<uint8_t> bytes(static_cast<size_t>(size));
    in.seekg(0);
    if (!in.read(reinterpret_cast<char*>(bytes.data()), size)) throw std::runtime_error("cannot read '" + path + "'");

    const size_t first = set.pixels.size();
    set.pixels.resize(first + size_t(records * kImageBytes));
    for (int64_t r = 0; r < records; ++r) {
        const uint8_t* record = bytes.data() + r * kRecordBytes;
        if (record[0] >= 10)
            throw std::runtime_error("'" + path + "' is corrupt: record " + std::to_string(r) + " has label " +
                                     std::to_string(record[0]) + " (CIFAR-10 labels are 0..9)");
        set.labels.push_back(record[0]);
        std::copy(record + 1, record + kRecordBytes, set.pixels.begin() + ptrdiff_t(first + size_t(r * kImageBytes)));
    }
    set.count += records;
}

std::vector<std::string> read_class_names(const std::string& dir) {
    std::ifstream in(dir + "/batches.meta.txt");
    if (!in) return cifar10_class_names();
    std::vector<std::string> names;
    for (std::string line; std::getline(in, line);)
        if (!line.empty() && line != "\r") names.push_back(line.back() == '\r' ? line.substr(0, line.size() - 1) : line);
    if (names.size() != 10)
        throw std::runtime_error("'" + dir + "/batches.meta.txt' is corrupt: " + std::to_string(names.size()) +
                                 " class names, expected 10");
    return names;
}
}  // namespace

const std::vector<std::string>& cifar10_class_names() {
    static const std::vector<std::string> names{"airplane", "automobile", "bird",  "cat",  "deer",
                                                "dog",      "frog",       "horse", "ship", "truck"};
    return names;
}

ImageSet load_cifar10(const std::string& dir, Split split) {
    const std::string root = batches_dir(dir);
    ImageSet set;
    set.channels = kChannels, set.height = kSide, set.width = kSide;
    set.class_names = read_class_names(root);
    if (split == Split::train)
        for (int i = 1; i <= 5; ++i) append_batch_file(set, root + "/data_batch_" + std::to_string(i) + ".bin");
    else
        append_batch_file(set, root + "/test_batch.bin");
    return set;
}

}  // namespace dn
