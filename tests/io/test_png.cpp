// write_png: what is written decodes (with the data loader's decoder) to the same pixels; failures are errors.
#include "io/png.h"

#include "data/image_file.h"

#include "scratch_dir.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>

namespace dn {
namespace {

namespace fs = std::filesystem;

fs::path scratch(const std::string& name) { return test::scratch_dir(name); }

void expect_round_trip(int64_t height, int64_t width, int64_t channels) {
    std::vector<uint8_t> pixels(size_t(height * width * channels));
    std::mt19937 rng(unsigned(height * 31 + width * 7 + channels));
    for (auto& p : pixels) p = uint8_t(rng());
    const std::string path = (scratch("round_trip") / "p.png").string();
    write_png(path, pixels.data(), height, width, channels);
    for (const auto& f : fs::directory_iterator(fs::path(path).parent_path()))
        EXPECT_EQ(f.path().string().find(".tmp"), std::string::npos) << f.path();  // no temporary file left

    const DecodedImage decoded = decode_image(path);
    EXPECT_EQ(decoded.height, height);
    EXPECT_EQ(decoded.width, width);
    ASSERT_EQ(decoded.channels, channels);
    const int64_t plane = height * width;
    for (int64_t p = 0; p < plane; ++p)  // written (height, width, channels), decoded planar
        for (int64_t c = 0; c < channels; ++c)
            ASSERT_EQ(decoded.pixels[size_t(c * plane + p)], pixels[size_t(p * channels + c)]) << p << " " << c;
}

TEST(WritePng, RgbAndGreyRoundTrip) {
    expect_round_trip(74, 74, 3);
    expect_round_trip(5, 13, 1);
    expect_round_trip(1, 1, 3);
}

TEST(WritePng, MissingFolderIsAnErrorNamingThePath) {
    const uint8_t pixel[3] = {1, 2, 3};
    const std::string path = (scratch("missing") / "no" / "such" / "folder" / "p.png").string();
    try {
        write_png(path, pixel, 1, 1, 3);
        FAIL() << "no error";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
}

TEST(WritePng, UnwritableFolderIsAnError) {
    const uint8_t pixel[3] = {1, 2, 3};
    const fs::path file = scratch("not_a_folder") / "file";  // a "folder" no one can write into, root included
    std::ofstream(file) << "x";
    EXPECT_THROW(write_png((file / "p.png").string(), pixel, 1, 1, 3), std::runtime_error);
    if (::geteuid() == 0) return;  // root ignores permissions
    const fs::path dir = scratch("read_only");
    fs::permissions(dir, fs::perms::owner_read | fs::perms::owner_exec);
    EXPECT_THROW(write_png((dir / "p.png").string(), pixel, 1, 1, 3), std::runtime_error);
    fs::permissions(dir, fs::perms::owner_all);
}

TEST(WritePng, RejectsOtherChannelCountsAndEmptySizes) {
    const uint8_t pixels[8] = {};
    const std::string path = (scratch("bad") / "p.png").string();
    EXPECT_THROW(write_png(path, pixels, 1, 2, 4), std::invalid_argument);
    EXPECT_THROW(write_png(path, pixels, 0, 2, 1), std::invalid_argument);
    EXPECT_FALSE(fs::exists(path));
}

}  // namespace
}  // namespace dn
