// defines: TorchTensor, TorchFile (what torch.save wrote, read without Python and without running code)
//
// Two formats, told apart by their first bytes:
// - zip (torch.save since PyTorch 1.6): <name>/data.pkl, the object's pickle, whose tensors refer
//   by persistent id to storages stored raw as <name>/data/<key>;
// - the legacy stream (`_use_new_zipfile_serialization=False`, and torchvision's ImageNet
//   weights): five pickles in a row (magic number, protocol 1001, system info, the object, the
//   storage keys) and then each storage, as an 8-byte element count and its raw bytes.
// The pickles are read by io/pickle.h's restricted machine; the only globals they may name are
// OrderedDict, PyTorch's tensor and parameter rebuilders and its typed storages.
#pragma once
#include "io/pickle.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace dn {

// A tensor as it was saved, made contiguous (a view's offset and strides applied).
struct TorchTensor {
    std::string dtype;           // as safetensors names it: "F32", "I64", "BF16", ...
    std::vector<int64_t> shape;
    std::vector<std::byte> data; // little-endian, row-major
};

class TorchFile {
public:
    // Throws std::runtime_error naming the file: not a PyTorch file, damaged or truncated, or one
    // that names code or holds a tensor outside its storage.
    explicit TorchFile(const std::string& path);
    // A file's bytes already in memory; path names it in errors.
    TorchFile(std::string path, const std::vector<std::byte>& bytes);

    const PickleObject& root() const { return *root_; }
    const std::string& path() const { return path_; }
    const char* format() const { return zip_ ? "zip" : "legacy"; }
    // The tensor a pickle value stands for, or null if it is not one.
    const TorchTensor* tensor(const PickleObject& value) const;

private:
    void read(const std::vector<std::byte>& file);

    std::string path_;
    bool zip_ = false;
    PickleArena arena_;
    PickleObject* root_ = nullptr;
    std::vector<TorchTensor> tensors_;  // in the order the pickle built them
};

}  // namespace dn
