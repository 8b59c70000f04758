// Decoding PNG and JPEG against PIL's pixels, channel conversion as PIL's, and the image-folder
// loader against torchvision's ImageFolder, on files make_image_reference.py wrote.
#include "data/image_file.h"
#include "data/image_folder.h"
#include "test_util.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>

namespace dn {
namespace {

std::string images_dir() { return test::reference_dir() + "/images"; }
std::string files_dir() { return images_dir() + "/files"; }

std::vector<uint8_t> read_bytes(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw std::runtime_error("cannot open '" + path + "' (run the make_image_reference fixture)");
    return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

struct Expected {
    std::string file;
    int64_t channels, height, width;
};

std::vector<Expected> manifest() {
    std::ifstream f(files_dir() + "/manifest.txt");
    std::vector<Expected> all;
    Expected e;
    while (f >> e.file >> e.channels >> e.height >> e.width) all.push_back(e);
    return all;
}

struct Diff {
    int max = 0;
    double mean = 0;
};

Diff diff(const uint8_t* a, const uint8_t* b, size_t n) {
    Diff d;
    for (size_t i = 0; i < n; ++i) {
        const int x = std::abs(int(a[i]) - int(b[i]));
        d.max = std::max(d.max, x);
        d.mean += x;
    }
    d.mean /= double(n);
    return d;
}

// The message must say which file, and why.
template <class F>
std::string error_of(F f) {
    try {
        f();
    } catch (const std::runtime_error& e) {
        return e.what();
    }
    return "(no error)";
}

// Every kind of PNG and JPEG that PIL opens decodes to PIL's pixels exactly: libjpeg-turbo is
// the library PIL decodes JPEG with, and with the same settings gives the same pixels.
TEST(ImageFile, EveryKindIsExactlyPils) {
    int png = 0, jpeg = 0;
    for (const auto& e : manifest()) {
        const DecodedImage img = decode_image(files_dir() + "/" + e.file);
        EXPECT_EQ(img.channels, e.channels) << e.file;
        EXPECT_EQ(img.height, e.height) << e.file;
        EXPECT_EQ(img.width, e.width) << e.file;
        const std::vector<uint8_t> want = read_bytes(files_dir() + "/" + e.file + ".expected");
        ASSERT_EQ(img.pixels.size(), want.size()) << e.file;
        const Diff d = diff(img.pixels.data(), want.data(), want.size());
        EXPECT_EQ(d.max, 0) << e.file << ": mean |diff| " << d.mean;
        png += e.file.ends_with(".png");
        jpeg += e.file.ends_with(".jpg");
    }
    // PNG: RGB, L, RGBA, LA, P of 4 and 8 bits, P with tRNS, 1- and 2-bit grey, 16-bit grey, RGB,
    // LA and RGBA, interlaced RGB and grey. JPEG: RGB 4:2:0 and 4:4:4, grey, progressive, CMYK.
    EXPECT_EQ(png, 15);
    EXPECT_EQ(jpeg, 5);
}

TEST(ImageFile, HeaderSaysWhatDecodingGives) {
    for (const auto& e : manifest()) {
        const std::vector<uint8_t> bytes = read_bytes(files_dir() + "/" + e.file);
        const ImageHeader header = read_image_header(bytes.data(), bytes.size(), e.file);
        EXPECT_EQ(header.format, e.file.ends_with(".png") ? ImageFormat::png : ImageFormat::jpeg) << e.file;
        EXPECT_EQ(header.channels, e.channels) << e.file;
        EXPECT_EQ(header.height, e.height) << e.file;
        EXPECT_EQ(header.width, e.width) << e.file;
    }
}

TEST(ImageFile, MemoryDecodesAsTheFile) {
    const std::string path = files_dir() + "/rgba.png";
    const std::vector<uint8_t> bytes = read_bytes(path);
    EXPECT_EQ(decode_image_memory(bytes.data(), bytes.size(), "rgba.png").pixels, decode_image(path).pixels);
}

TEST(ImageFile, ConvertsChannelsAsPil) {
    const DecodedImage rgb = decode_image(files_dir() + "/rgb.png");
    EXPECT_EQ(convert_channels(rgb, 1).pixels, read_bytes(files_dir() + "/rgb.png.L"));
    const DecodedImage gray = decode_image(files_dir() + "/gray.png");
    const DecodedImage three = convert_channels(gray, 3);
    ASSERT_EQ(three.channels, 3);
    const size_t plane = gray.pixels.size();
    for (size_t c = 0; c < 3; ++c)
        EXPECT_TRUE(std::equal(gray.pixels.begin(), gray.pixels.end(), three.pixels.begin() + std::ptrdiff_t(c * plane)));
    EXPECT_EQ(convert_channels(three, 1).pixels, gray.pixels);  // grey survives the round trip
    EXPECT_THROW(convert_channels(rgb, 2), std::invalid_argument);
}

// A PNG of a few dozen bytes whose header claims 15000x15000 pixels (675 MB decoded): refused
// before anything is allocated, as PIL refuses a decompression bomb.
TEST(ImageFile, AbsurdDimensionsAreRefusedBeforeDecoding) {
    auto be32 = [](std::vector<uint8_t>& out, uint32_t v) {
        for (int s = 24; s >= 0; s -= 8) out.push_back(uint8_t(v >> s));
    };
    std::vector<uint8_t> png{0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    std::vector<uint8_t> ihdr{'I', 'H', 'D', 'R'};
    be32(ihdr, 15000);
    be32(ihdr, 15000);
    ihdr.insert(ihdr.end(), {8, 2, 0, 0, 0});  // 8 bits, RGB
    be32(png, 13);
    png.insert(png.end(), ihdr.begin(), ihdr.end());
    be32(png, uint32_t(crc32(0, ihdr.data(), uInt(ihdr.size()))));
    try {
        decode_image_memory(png.data(), png.size(), "bomb.png");
        ADD_FAILURE() << "decoded";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("15000x15000"), std::string::npos) << e.what();
    }
    // Sizes whose product overflows 64 bits (the fuzzer's finding: the check itself overflowed).
    for (size_t at = 16; at < 24; ++at) png[at] = 0xff;  // width and height 2^32 - 1
    try {
        decode_image_memory(png.data(), png.size(), "overflow.png");
        ADD_FAILURE() << "decoded";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("decompression-bomb"), std::string::npos) << e.what();
    }
}

TEST(ImageFile, BadFilesAreErrorsNamingTheFile) {
    for (const char* name : {"truncated.png", "truncated.jpg", "text.png", "missing.png"}) {
        const std::string path = files_dir() + "/" + name;
        EXPECT_THROW(decode_image(path), std::runtime_error) << name;
        const std::string what = error_of([&] { decode_image(path); });
        std::printf("%s: %s\n", name, what.c_str());
        EXPECT_NE(what.find(name), std::string::npos) << what;
    }
}

struct Sample {
    std::string path;
    int32_t label;
};

std::vector<Sample> torchvision_samples() {
    std::ifstream f(images_dir() + "/folder_samples.txt");
    std::vector<Sample> all;
    Sample s;
    while (f >> s.path >> s.label) all.push_back(s);
    return all;
}

// Every sample matches torchvision's ImageFolder + Resize((24, 24)) exactly, PNGs and JPEGs.
void expect_folder_matches(int64_t channels, const char* raw_name) {
    const int64_t size = 24;
    const ImageSet set = load_image_folder(images_dir() + "/folder", size, channels);
    std::vector<std::string> classes;
    std::ifstream f(images_dir() + "/folder_classes.txt");
    for (std::string c; f >> c;) classes.push_back(c);
    EXPECT_EQ(set.class_names, classes);
    EXPECT_EQ(set.class_names, (std::vector<std::string>{"Bee", "ant", "zebra"}));

    const std::vector<Sample> samples = torchvision_samples();
    ASSERT_EQ(set.count, 7);
    ASSERT_EQ(set.count, int64_t(samples.size()));
    EXPECT_EQ(set.channels, channels);
    EXPECT_EQ(set.height, size);
    EXPECT_EQ(set.width, size);
    const std::vector<uint8_t> want = read_bytes(images_dir() + "/" + raw_name);
    ASSERT_EQ(want.size(), set.pixels.size());
    for (int64_t i = 0; i < set.count; ++i) {
        const Sample& s = samples[size_t(i)];
        EXPECT_EQ(set.labels[size_t(i)], s.label) << s.path;
        const Diff d = diff(set.image(i), want.data() + i * set.image_bytes(), size_t(set.image_bytes()));
        std::printf("%d channel(s), sample %lld %-18s label %d: max |diff| %d vs torchvision\n", int(channels), (long long)i,
                    s.path.c_str(), s.label, d.max);
        EXPECT_EQ(d.max, 0) << s.path;
    }
}

TEST(ImageFolder, MatchesTorchvisionImageFolderInRgb) { expect_folder_matches(3, "folder_rgb_24.raw"); }
TEST(ImageFolder, MatchesTorchvisionGrayscaleInGrey) { expect_folder_matches(1, "folder_gray_24.raw"); }

TEST(ImageFolder, Errors) {
    const std::string dir = images_dir();
    EXPECT_NE(error_of([&] { load_image_folder(dir + "/no_such_folder", 24, 3); }).find("no_such_folder"), std::string::npos);
    EXPECT_NE(error_of([&] { load_image_folder(dir + "/folder_empty", 24, 3); }).find("no class"), std::string::npos);
    EXPECT_NE(error_of([&] { load_image_folder(dir + "/folder_noimages", 24, 3); }).find("empty"), std::string::npos);
    const std::string bad = error_of([&] { load_image_folder(dir + "/folder_bad", 24, 3); });
    std::printf("folder_bad: %s\n", bad.c_str());
    EXPECT_NE(bad.find("broken.png"), std::string::npos) << bad;
    EXPECT_THROW(load_image_folder(dir + "/folder", 24, 2), std::invalid_argument);
    EXPECT_THROW(load_image_folder(dir + "/folder", 0, 3), std::invalid_argument);
}

}  // namespace
}  // namespace dn
