#include "io/safetensors.h"

#include "io/atomic_file.h"

#include <nlohmann/json.hpp>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace dn {

size_t dtype_size(const std::string& dtype) {
    static const std::map<std::string, size_t> sizes{{"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8},
                                                     {"I32", 4}, {"I16", 2}, {"I8", 1},   {"U8", 1},   {"BOOL", 1}};
    auto it = sizes.find(dtype);
    if (it == sizes.end()) throw std::runtime_error("unknown safetensors dtype '" + dtype + "'");
    return it->second;
}

namespace {
// The JSON header, padded so that the data stays 8-byte aligned, as the reference writer does.
std::string header_text(const std::vector<SafeTensor>& tensors, const std::map<std::string, std::string>& metadata) {
    nlohmann::ordered_json header;
    if (!metadata.empty()) header["__metadata__"] = metadata;
    size_t offset = 0;
    for (const auto& t : tensors) {
        header[t.name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {offset, offset + t.bytes}}};
        offset += t.bytes;
    }
    std::string text = header.dump();
    text.append((8 - text.size() % 8) % 8, ' ');
    return text;
}

std::array<char, 8> little_endian_length(uint64_t length) {
    std::array<char, 8> le;
    for (int i = 0; i < 8; ++i) le[size_t(i)] = char((length >> (8 * i)) & 0xff);
    return le;
}
}  // namespace

void write_safetensors(const std::string& path, const std::vector<SafeTensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
    const std::string text = header_text(tensors, metadata);
    AtomicFile file(path);
    std::ofstream out(file.temp_path(), std::ios::binary | std::ios::trunc);
    if (!out) throw std::runtime_error("cannot write '" + path + "': " + std::strerror(errno));
    out.write(little_endian_length(text.size()).data(), 8);
    out.write(text.data(), std::streamsize(text.size()));
    for (const auto& t : tensors) out.write(static_cast<const char*>(t.data), std::streamsize(t.bytes));
    out.close();
    if (!out) throw std::runtime_error("failed while writing '" + path + "' (disk full?)");
    file.commit();
}

std::vector<std::byte> safetensors_bytes(const std::vector<SafeTensor>& tensors,
                                         const std::map<std::string, std::string>& metadata) {
    const std::string text = header_text(tensors, metadata);
    std::vector<std::byte> bytes;
    auto append = [&](const void* p, size_t n) {
        const auto* b = static_cast<const std::byte*>(p);
        bytes.insert(bytes.end(), b, b + n);
    };
    append(little_endian_length(text.size()).data(), 8);
    append(text.data(), text.size());
    for (const auto& t : tensors) append(t.data, t.bytes);
    return bytes;
}

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
    std::ifstream in(path, std::ios::binary | std::ios::ate);
    if (!in) throw std::runtime_error("cannot open '" + path + "': " + std::strerror(errno));
    const auto size = size_t(in.tellg());
    in.seekg(0);
    bytes_.resize(size);
    in.read(reinterpret_cast<char*>(bytes_.data()), std::streamsize(size));
    if (!in) throw std::runtime_error("cannot read '" + path + "'");
    parse();
}

SafetensorsFile::SafetensorsFile(std::string path, std::vector<std::byte> bytes)
    : path_(std::move(path)), bytes_(std::move(bytes)) {
    parse();
}

void SafetensorsFile::parse() {
    const std::string& path = path_;
    auto fail = [&](const std::string& why) { throw std::runtime_error("'" + path + "' is not a valid safetensors file: " + why); };
    const size_t size = bytes_.size();

    if (size < 8) fail("shorter than its 8-byte header length (truncated?)");
    uint64_t length = 0;
    for (int i = 0; i < 8; ++i) length |= uint64_t(std::to_integer<unsigned char>(bytes_[size_t(i)])) << (8 * i);
    if (length > size - 8) fail("its header runs past the end of the file (truncated?)");
    nlohmann::json header;
    try {
        header = nlohmann::json::parse(reinterpret_cast<const char*>(bytes_.data()) + 8,
                                       reinterpret_cast<const char*>(bytes_.data()) + 8 + length);
    } catch (const nlohmann::json::exception&) {
        fail("its header is not JSON (corrupt?)");
    }
    if (!header.is_object()) fail("its header is not a JSON object");
    const std::byte* data = bytes_.data() + 8 + length;
    const size_t data_bytes = size - 8 - length;
    for (auto& [name, value] : header.items()) {
        if (name == "__metadata__") {
            if (!value.is_object()) fail("__metadata__ is not an object");
            for (auto& [key, v] : value.items()) {
                if (!v.is_string()) fail("__metadata__ value of '" + key + "' is not a string");
                metadata_[key] = v.get<std::string>();
            }
            continue;
        }
        try {
            Tensor t;
            t.dtype = value.at("dtype").get<std::string>();
            t.shape = value.at("shape").get<std::vector<int64_t>>();
            auto offsets = value.at("data_offsets").get<std::vector<uint64_t>>();
            if (offsets.size() != 2 || offsets[0] > offsets[1] || offsets[1] > data_bytes)
                fail("tensor '" + name + "' lies outside the file (truncated?)");
            // The element count may not exceed what the file can hold, so the product never wraps.
            size_t numel = 1;
            for (int64_t d : t.shape) {
                if (d < 0) fail("tensor '" + name + "' has a negative dimension");
                if (d > 0 && numel > data_bytes / size_t(d)) fail("tensor '" + name + "' is larger than the file");
                numel *= size_t(d);
            }
            t.bytes = offsets[1] - offsets[0];
            if (t.bytes != numel * dtype_size(t.dtype)) fail("tensor '" + name + "' has the wrong number of bytes for its shape");
            t.data = data + offsets[0];
            tensors_[name] = t;
        } catch (const nlohmann::json::exception&) {
            fail("tensor '" + name + "' has a malformed entry");
        }
    }
}

}  // namespace dn
