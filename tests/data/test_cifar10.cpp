// CIFAR-10's binary format, written by the test, read back; its failure modes; and the download
// path (libcurl, MD5, libarchive) served from a file:// URL, since the real one is offline here.
#include "data/cifar10.h"
#include "data/datasets.h"
#include "data/download.h"

#include "scratch_dir.h"

#include <archive.h>
#include <archive_entry.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <random>

namespace fs = std::filesystem;
using namespace dn;

namespace {
constexpr int kRecord = 3073;

// Record r of file f: label (f + r) % 10, pixel bytes a function of (f, r, index).
uint8_t pixel(int f, int r, int i) { return uint8_t((f * 131 + r * 17 + i * 7) & 0xff); }

void write_batch(const fs::path& path, int f, int records) {
    std::ofstream out(path, std::ios::binary);
    for (int r = 0; r < records; ++r) {
        out.put(char((f + r) % 10));
        for (int i = 0; i < 3072; ++i) out.put(char(pixel(f, r, i)));
    }
}

fs::path make_cifar(const fs::path& dir, int records) {
    fs::remove_all(dir);
    fs::create_directories(dir);
    for (int f = 1; f <= 5; ++f) write_batch(dir / ("data_batch_" + std::to_string(f) + ".bin"), f, records);
    write_batch(dir / "test_batch.bin", 0, records);
    std::ofstream(dir / "batches.meta.txt") << "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n";
    return dir;
}

fs::path temp(const std::string& name) {
    static const fs::path root = test::scratch_dir("cifar10");
    return root / name;
}

void expect_error(const std::function<void()>& f, const std::string& fragment) {
    try {
        f();
        ADD_FAILURE() << "no error; expected one mentioning '" << fragment << "'";
    } catch (const std::exception& e) {
        EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
}
}  // namespace

TEST(Cifar10, ReadsPlanesAndLabelsInFileOrder) {
    const fs::path dir = make_cifar(temp("plain"), 7);
    const ImageSet train = load_cifar10(dir.string(), Split::train);
    ASSERT_EQ(train.count, 35);
    EXPECT_EQ(train.channels, 3);
    EXPECT_EQ(train.height, 32);
    EXPECT_EQ(train.class_names, cifar10_class_names());
    for (int f = 1; f <= 5; ++f)
        for (int r = 0; r < 7; ++r) {
            const int64_t n = (f - 1) * 7 + r;
            EXPECT_EQ(train.labels[size_t(n)], (f + r) % 10);
            // R plane first, rows of 32: byte i of the record is pixel i of the (3,32,32) tensor.
            for (int i : {0, 1, 31, 32, 1023, 1024, 2048, 3071}) EXPECT_EQ(train.image(n)[i], pixel(f, r, i));
        }
    const ImageSet test = load_cifar10(dir.string(), Split::test);
    EXPECT_EQ(test.count, 7);
}

TEST(Cifar10, FindsTheArchivesFolderAndWorksWithoutMeta) {
    const fs::path root = temp("nested");
    fs::remove_all(root);
    make_cifar(root / "cifar-10-batches-bin", 2);
    fs::remove(root / "cifar-10-batches-bin" / "batches.meta.txt");
    const ImageSet test = load_dataset({"cifar10", root.string()}, Split::test);
    EXPECT_EQ(test.count, 2);
    EXPECT_EQ(test.class_names[9], "truck");
}

TEST(Cifar10, RejectsMissingTruncatedAndCorruptFiles) {
    const fs::path dir = make_cifar(temp("bad"), 3);
    expect_error([&] { load_cifar10(temp("nowhere").string(), Split::test); }, "no CIFAR-10 files");
    fs::remove(dir / "data_batch_4.bin");
    expect_error([&] { load_cifar10(dir.string(), Split::train); }, "data_batch_4.bin");
    fs::resize_file(dir / "test_batch.bin", 3 * kRecord - 100);
    expect_error([&] { load_cifar10(dir.string(), Split::test); }, "truncated");
    write_batch(dir / "test_batch.bin", 0, 3);
    {
        std::fstream f(dir / "test_batch.bin", std::ios::binary | std::ios::in | std::ios::out);
        f.seekp(kRecord);
        f.put(char(200));  // the second record's label
    }
    expect_error([&] { load_cifar10(dir.string(), Split::test); }, "label 200");
    std::ofstream(dir / "batches.meta.txt") << "cat\ndog\n";
    expect_error([&] { load_cifar10(dir.string(), Split::train); }, "batches.meta.txt");
}

namespace {
// A tar.gz holding cifar-10-batches-bin/, as the real archive does; `prefix` goes before every
// name, and `link_to`, when given, adds a symbolic link entry pointing there.
void make_archive(const fs::path& source, const fs::path& archive_path, const std::string& prefix = "",
                  const std::string& link_to = "") {
    archive* a = archive_write_new();
    archive_write_add_filter_gzip(a);
    archive_write_set_format_pax_restricted(a);
    ASSERT_EQ(archive_write_open_filename(a, archive_path.c_str()), ARCHIVE_OK);
    for (const auto& file : fs::directory_iterator(source)) {
        std::ifstream in(file.path(), std::ios::binary);
        const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        archive_entry* e = archive_entry_new();
        archive_entry_set_pathname(e, (prefix + "cifar-10-batches-bin/" + file.path().filename().string()).c_str());
        archive_entry_set_size(e, la_int64_t(bytes.size()));
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_perm(e, 0644);
        archive_write_header(a, e);
        archive_write_data(a, bytes.data(), bytes.size());
        archive_entry_free(e);
    }
    if (!link_to.empty()) {
        archive_entry* e = archive_entry_new();
        archive_entry_set_pathname(e, "cifar-10-batches-bin/escape");
        archive_entry_set_filetype(e, AE_IFLNK);
        archive_entry_set_symlink(e, link_to.c_str());
        archive_entry_set_perm(e, 0777);
        archive_write_header(a, e);
        archive_entry_free(e);
    }
    archive_write_close(a);
    archive_write_free(a);
}
}  // namespace

TEST(Download, FetchesChecksAndUnpacks) {
    const fs::path source = make_cifar(temp("source"), 2), served = temp("served.tar.gz"), target = temp("download");
    make_archive(source, served);
    fs::remove_all(target);
    const std::string md5 = md5_hex(served.string());
    EXPECT_EQ(md5.size(), 32u);
    download_cifar10(target.string(), "file://" + served.string(), md5);
    const ImageSet train = load_cifar10(target.string(), Split::train);
    EXPECT_EQ(train.count, 10);
    EXPECT_EQ(train.image(9)[100], pixel(5, 1, 100));
    // Nothing but the archive and the folder is left behind.
    int entries = 0;
    for (const auto& e : fs::directory_iterator(target)) {
        ++entries;
        EXPECT_EQ(e.path().filename().string()[0], 'c') << e.path();
    }
    EXPECT_EQ(entries, 2);
}

TEST(Download, AWrongMd5LeavesNothingBehind) {
    const fs::path source = make_cifar(temp("source2"), 1), served = temp("served2.tar.gz"), target = temp("download2");
    make_archive(source, served);
    fs::remove_all(target);
    expect_error([&] { download_cifar10(target.string(), "file://" + served.string(), std::string(32, '0')); },
                 "expected 00000000");
    EXPECT_TRUE(fs::is_empty(target));
    expect_error([&] { download_cifar10(target.string(), "file:///no/such/file.tar.gz", std::string(32, '0')); },
                 "cannot download");
    EXPECT_TRUE(fs::is_empty(target));
}

TEST(Download, ACorruptArchiveIsAnError) {
    const fs::path bad = temp("corrupt.tar.gz"), target = temp("download3");
    fs::remove_all(target);
    std::ofstream(bad, std::ios::binary) << "\x1f\x8b this is not gzip data at all";
    expect_error([&] { extract_archive(bad.string(), target.string()); }, "cannot extract");
    EXPECT_FALSE(fs::exists(target / "cifar-10-batches-bin"));
}

TEST(Download, DotPrefixesAreFineLinksAreRefused) {
    const fs::path source = make_cifar(temp("source3"), 1), target = temp("download4");
    make_archive(source, temp("dotted.tar.gz"), "./");
    fs::remove_all(target);
    fs::create_directories(target);
    std::ofstream(target / "keep.txt") << "other data in the folder";
    extract_archive(temp("dotted.tar.gz").string(), target.string());
    EXPECT_EQ(load_cifar10(target.string(), Split::test).count, 1);
    EXPECT_TRUE(fs::exists(target / "keep.txt"));  // "./" did not make the folder itself a target

    make_archive(source, temp("linked.tar.gz"), "", "/etc");
    const fs::path target2 = temp("download5");
    fs::remove_all(target2);
    expect_error([&] { extract_archive(temp("linked.tar.gz").string(), target2.string()); }, "unsafe or unsupported");
    EXPECT_FALSE(fs::exists(target2 / "cifar-10-batches-bin"));
}
