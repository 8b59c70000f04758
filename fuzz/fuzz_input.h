// defines: FuzzFile, FuzzFolder, fuzz_split: a fuzzer's bytes as the files a reader opens
#pragma once
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <utility>

namespace dn::fuzz {

// A folder of this process's own under $TMPDIR (a tmpfs is best), emptied for each input.
inline std::filesystem::path fuzz_folder(const std::string& name) {
    namespace fs = std::filesystem;
    const fs::path dir = fs::temp_directory_path() / ("densenet_fuzz_" + std::to_string(::getpid())) / name;
    std::error_code ignored;
    fs::remove_all(dir, ignored);
    fs::create_directories(dir);
    return dir;
}

inline void write_file(const std::filesystem::path& path, std::string_view bytes) {
    std::filesystem::create_directories(path.parent_path());
    std::ofstream(path, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
}

// Two files from one input: the first byte says where the second begins (as a share of the
// rest), so the fuzzer can grow and shrink both.
inline std::pair<std::string_view, std::string_view> fuzz_split(const uint8_t* data, size_t size) {
    if (size == 0) return {};
    const std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
    const size_t at = rest.size() * data[0] / 255;
    return {rest.substr(0, at), rest.substr(at)};
}

}  // namespace dn::fuzz
