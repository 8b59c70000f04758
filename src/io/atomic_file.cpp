#include "io/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace dn {

namespace {
// fsync on a path: the file's data, or a folder's entry list after a rename.
bool sync_path(const std::string& path, int flags) {
    const int fd = ::open(path.c_str(), flags);
    if (fd < 0) return false;
    const bool ok = ::fsync(fd) == 0;
    ::close(fd);
    return ok;
}
}  // namespace

AtomicFile::AtomicFile(std::string path)
    : path_(std::move(path)), temp_(path_ + ".tmp." + std::to_string(::getpid())) {}

AtomicFile::~AtomicFile() {
    if (!committed_) std::remove(temp_.c_str());
}

void AtomicFile::commit() {
    if (!sync_path(temp_, O_RDONLY))
        throw std::runtime_error("cannot write '" + path_ + "': " + std::strerror(errno) + " (disk full?)");
    std::error_code ec;
    std::filesystem::rename(temp_, path_, ec);
    if (ec) throw std::runtime_error("cannot move '" + temp_ + "' to '" + path_ + "': " + ec.message());
    committed_ = true;
    const std::string folder = std::filesystem::path(path_).parent_path().string();
    sync_path(folder.empty() ? "." : folder, O_RDONLY | O_DIRECTORY);  // best effort: the rename is done
}

void write_file_atomically(const std::string& path, std::string_view bytes) {
    AtomicFile file(path);
    {
        std::ofstream out(file.temp_path(), std::ios::binary | std::ios::trunc);
        if (!out) throw std::runtime_error("cannot write '" + path + "': " + std::strerror(errno));
        out.write(bytes.data(), std::streamsize(bytes.size()));
        out.close();
        if (!out) throw std::runtime_error("failed while writing '" + path + "' (disk full?)");
    }
    file.commit();
}

}  // namespace dn
