// defines: AtomicFile (write a file under a temporary name, then put it in place in one step)
#pragma once
#include <string>
#include <string_view>

namespace dn {

// Nothing is ever half-written: the writer fills temp_path(), and commit() flushes it to disk,
// renames it over path and flushes the folder, so a reader (or a crash) sees the old file or
// the new one, never a mix. The temporary name is unique to the process, so two writers never
// share one. Destroyed without commit(), it removes the temporary file.
class AtomicFile {
public:
    explicit AtomicFile(std::string path);
    ~AtomicFile();
    AtomicFile(const AtomicFile&) = delete;
    AtomicFile& operator=(const AtomicFile&) = delete;

    const std::string& temp_path() const { return temp_; }
    // Throws std::runtime_error naming path if the data cannot be made durable or moved.
    void commit();

private:
    std::string path_, temp_;
    bool committed_ = false;
};

// A whole file of bytes through an AtomicFile; throws std::runtime_error naming path.
void write_file_atomically(const std::string& path, std::string_view bytes);

}  // namespace dn
