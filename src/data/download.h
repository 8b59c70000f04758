// defines: md5_hex, download_file, extract_archive, download_cifar10 (fetch, check, unpack)
#pragma once
#include <string>

namespace dn {

constexpr const char* kCifar10Url = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz";
constexpr const char* kCifar10Md5 = "c32a1d4ab5d03f1284b67883e8d87530";

// The file's MD5 as 32 lower-case hex digits (libcrypto).
std::string md5_hex(const std::string& path);

// Fetches url (any scheme libcurl knows, file:// included) to path with a progress bar on stderr,
// and checks its MD5. The bytes go to path + ".part", renamed only once complete and verified: a
// failed or wrong download leaves nothing behind.
void download_file(const std::string& url, const std::string& path, const std::string& expected_md5);

// Unpacks a tar/tar.gz/zip archive (libarchive) into dir. Only plain files and folders whose names
// stay inside dir are accepted (no absolute paths, "..", links or devices). Entries are unpacked
// into dir/.partial-<archive name> and moved into place only when all of them are out.
void extract_archive(const std::string& archive, const std::string& dir);

// Downloads, checks and unpacks CIFAR-10's binary version into dir (dir/cifar-10-batches-bin),
// unless it is already there. url and md5 are parameters so tests can serve a file:// archive.
void download_cifar10(const std::string& dir, const std::string& url = kCifar10Url,
                      const std::string& expected_md5 = kCifar10Md5);

}  // namespace dn
