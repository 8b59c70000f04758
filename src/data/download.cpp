#include "data/download.h"

#include "io/progress_bar.h"

#include <archive.h>
#include <archive_entry.h>
#include <curl/curl.h>
#include <openssl/evp.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <vector>

namespace dn {

namespace fs = std::filesystem;

std::string md5_hex(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot open '" + path + "' to check its MD5");
    std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_md5(), nullptr) != 1) throw std::runtime_error("libcrypto has no MD5");
    std::vector<char> buf(1 << 20);
    while (in) {
        in.read(buf.data(), std::streamsize(buf.size()));
        EVP_DigestUpdate(ctx.get(), buf.data(), size_t(in.gcount()));
    }
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    EVP_DigestFinal_ex(ctx.get(), digest, &length);
    std::string hex;
    char two[3];
    for (unsigned int i = 0; i < length; ++i) {
        std::snprintf(two, sizeof two, "%02x", digest[i]);
        hex += two;
    }
    return hex;
}

namespace {
// libcurl reports progress in bytes, and the total only once the server has said it.
struct Progress {
    std::string name;
    std::unique_ptr<ProgressBar> bar;
};

int show_progress(void* user, curl_off_t total, curl_off_t now, curl_off_t, curl_off_t) {
    auto* p = static_cast<Progress*>(user);
    if (total <= 0) return 0;
    if (!p->bar) p->bar = std::make_unique<ProgressBar>("  " + p->name, int64_t(total / 1000), "kB");
    p->bar->update(int64_t(now / 1000), "");
    return 0;
}

size_t write_to_file(char* data, size_t size, size_t count, void* file) {
    return std::fwrite(data, size, count, static_cast<std::FILE*>(file)) * size;
}
}  // namespace

void download_file(const std::string& url, const std::string& path, const std::string& expected_md5) {
    const std::string part = path + ".part";
    std::unique_ptr<CURL, void (*)(CURL*)> curl(curl_easy_init(), curl_easy_cleanup);
    if (!curl) throw std::runtime_error("libcurl failed to start");
    std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(part.c_str(), "wb"), std::fclose);
    if (!file) throw std::runtime_error("cannot write '" + part + "'");
    Progress progress{fs::path(path).filename().string(), nullptr};
    char error[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(curl.get(), CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl.get(), CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(curl.get(), CURLOPT_FAILONERROR, 1L);
    // A dead server or network fails in a minute or so instead of hanging forever.
    curl_easy_setopt(curl.get(), CURLOPT_CONNECTTIMEOUT, 30L);
    curl_easy_setopt(curl.get(), CURLOPT_LOW_SPEED_LIMIT, 1024L);
    curl_easy_setopt(curl.get(), CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(curl.get(), CURLOPT_ERRORBUFFER, error);
    curl_easy_setopt(curl.get(), CURLOPT_WRITEFUNCTION, write_to_file);
    curl_easy_setopt(curl.get(), CURLOPT_WRITEDATA, file.get());
    curl_easy_setopt(curl.get(), CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(curl.get(), CURLOPT_XFERINFOFUNCTION, show_progress);
    curl_easy_setopt(curl.get(), CURLOPT_XFERINFODATA, &progress);
    const CURLcode code = curl_easy_perform(curl.get());
    if (progress.bar) progress.bar->finish();
    const bool written = std::fflush(file.get()) == 0;
    file.reset();
    auto discard = [&](const std::string& why) {
        std::error_code ignored;
        fs::remove(part, ignored);
        throw std::runtime_error(why);
    };
    if (code != CURLE_OK) discard("cannot download '" + url + "': " + (error[0] ? error : curl_easy_strerror(code)));
    if (!written) discard("failed while writing '" + part + "' (disk full?)");
    const std::string md5 = md5_hex(part);
    if (md5 != expected_md5)
        discard("'" + url + "' has MD5 " + md5 + ", expected " + expected_md5 + " (corrupt or wrong file; deleted)");
    fs::rename(part, path);
}

void extract_archive(const std::string& archive_path, const std::string& dir) {
    using Reader = std::unique_ptr<archive, int (*)(archive*)>;
    Reader in(archive_read_new(), archive_read_free);
    Reader out(archive_write_disk_new(), archive_write_free);
    archive_read_support_filter_all(in.get());
    archive_read_support_format_all(in.get());
    // Entry names are checked below before the staging folder (an absolute path) is put in front.
    archive_write_disk_set_options(out.get(),
                                   ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_SECURE_NODOTDOT | ARCHIVE_EXTRACT_SECURE_SYMLINKS);
    if (archive_read_open_filename(in.get(), archive_path.c_str(), 1 << 16) != ARCHIVE_OK) {
        const char* why = archive_error_string(in.get());
        throw std::runtime_error("cannot extract '" + archive_path + "': " + (why ? why : "cannot open it"));
    }

    const fs::path staging =
        fs::absolute(dir).lexically_normal() / (".partial-" + fs::path(archive_path).filename().string());
    fs::remove_all(staging);
    fs::create_directories(staging);
    // a: the archive whose error string explains the failure, or null when `what` says it all.
    auto fail = [&](archive* a, const std::string& what) {
        const char* why = a ? archive_error_string(a) : nullptr;
        std::error_code ignored;
        fs::remove_all(staging, ignored);
        throw std::runtime_error("cannot extract '" + archive_path + "': " + what + (why ? std::string(": ") + why : ""));
    };
    std::vector<fs::path> top_level;
    archive_entry* entry = nullptr;
    for (;;) {
        const int r = archive_read_next_header(in.get(), &entry);
        if (r == ARCHIVE_EOF) break;
        if (r != ARCHIVE_OK) fail(in.get(), "corrupt archive");
        // Only plain files and folders, with names that stay inside dir: links (hard or
        // symbolic) could point anywhere, and "." as a first component would make dir itself a
        // target to replace.
        const char* raw_name = archive_entry_pathname(entry);
        const fs::path name = fs::path(raw_name ? raw_name : "").lexically_normal();
        const bool climbs = std::find(name.begin(), name.end(), fs::path("..")) != name.end();
        const auto type = archive_entry_filetype(entry);
        if (name.is_absolute() || name.empty() || name == "." || climbs || archive_entry_hardlink(entry) ||
            (type != AE_IFREG && type != AE_IFDIR))
            fail(nullptr, "unsafe or unsupported entry '" + name.string() + "' (only plain files and folders)");
        const fs::path first = *name.begin();
        if (first == staging.filename()) fail(nullptr, "entry '" + name.string() + "' collides with the staging folder");
        if (std::find(top_level.begin(), top_level.end(), first) == top_level.end()) top_level.push_back(first);
        archive_entry_set_pathname(entry, (staging / name).c_str());
        if (archive_write_header(out.get(), entry) != ARCHIVE_OK) fail(out.get(), "'" + name.string() + "'");
        const void* block;
        size_t size;
        la_int64_t offset;
        for (;;) {
            const int rb = archive_read_data_block(in.get(), &block, &size, &offset);
            if (rb == ARCHIVE_EOF) break;
            if (rb != ARCHIVE_OK) fail(in.get(), "'" + name.string() + "' is truncated or corrupt");
            if (archive_write_data_block(out.get(), block, size, offset) != ARCHIVE_OK) fail(out.get(), name.string());
        }
        if (archive_write_finish_entry(out.get()) != ARCHIVE_OK) fail(out.get(), name.string());
    }
    for (const auto& name : top_level) {
        const fs::path target = fs::path(dir) / name;
        fs::remove_all(target);
        fs::rename(staging / name, target);
    }
    fs::remove_all(staging);
}

void download_cifar10(const std::string& dir, const std::string& url, const std::string& expected_md5) {
    const fs::path batches = fs::path(dir) / "cifar-10-batches-bin";
    if (fs::exists(batches / "test_batch.bin") && fs::exists(batches / "data_batch_5.bin")) {
        std::fprintf(stderr, "CIFAR-10 is already in %s\n", batches.c_str());
        return;
    }
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) throw std::runtime_error("cannot create '" + dir + "': " + ec.message());
    const std::string archive = (fs::path(dir) / "cifar-10-binary.tar.gz").string();
    if (!fs::exists(archive) || md5_hex(archive) != expected_md5) {
        std::fprintf(stderr, "downloading %s\n", url.c_str());
        download_file(url, archive, expected_md5);
    }
    extract_archive(archive, dir);
    if (!fs::exists(batches / "test_batch.bin"))
        throw std::runtime_error("'" + archive + "' did not contain cifar-10-batches-bin/test_batch.bin");
    std::fprintf(stderr, "CIFAR-10 is in %s\n", batches.c_str());
}

}  // namespace dn
