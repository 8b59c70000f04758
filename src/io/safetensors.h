// defines: SafeTensor (a tensor to write), write_safetensors, SafetensorsFile (a checked reader)
//
// The format (huggingface/safetensors): 8-byte little-endian header length, a JSON header
// {"name": {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, "__metadata__": {...}},
// then the raw little-endian data.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace dn {

struct SafeTensor {
    std::string name;
    std::string dtype;  // "F32", "I64", "BF16", ...
    std::vector<int64_t> shape;
    const void* data = nullptr;
    size_t bytes = 0;
};

size_t dtype_size(const std::string& dtype);  // throws on an unknown dtype

// Writes to path + ".tmp", then renames: a reader never sees a half-written file.
void write_safetensors(const std::string& path, const std::vector<SafeTensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {});
// The same file's bytes, in memory.
std::vector<std::byte> safetensors_bytes(const std::vector<SafeTensor>& tensors,
                                         const std::map<std::string, std::string>& metadata = {});

// Reads and validates a whole file; every failure is a std::runtime_error naming the file.
class SafetensorsFile {
public:
    explicit SafetensorsFile(const std::string& path);
    // A file's bytes already in memory (a PyTorch file converted on the fly); path names it in errors.
    SafetensorsFile(std::string path, std::vector<std::byte> bytes);
    // Its tensors point into its bytes: moving keeps them valid, a copy would not.
    SafetensorsFile(SafetensorsFile&&) = default;
    SafetensorsFile& operator=(SafetensorsFile&&) = default;
    SafetensorsFile(const SafetensorsFile&) = delete;
    SafetensorsFile& operator=(const SafetensorsFile&) = delete;

    struct Tensor {
        std::string dtype;
        std::vector<int64_t> shape;
        const std::byte* data;
        size_t bytes;
    };
    const std::map<std::string, Tensor>& tensors() const { return tensors_; }
    const std::map<std::string, std::string>& metadata() const { return metadata_; }
    const std::string& path() const { return path_; }

private:
    void parse();

    std::string path_;
    std::vector<std::byte> bytes_;
    std::map<std::string, Tensor> tensors_;
    std::map<std::string, std::string> metadata_;
};

}  // namespace dn
