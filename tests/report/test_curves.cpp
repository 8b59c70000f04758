// write_curves and draw_run_pictures: the files exist, decode, show both curves in their colours,
// appear atomically, and PLplot stays quiet.
#include "data/image_file.h"
#include "model/init.h"
#include "report/curves.h"
#include "report/run_pictures.h"

#include "scratch_dir.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace dn {
namespace {

namespace fs = std::filesystem;

fs::path scratch(const std::string& name) { return test::scratch_dir(name); }

struct Decoded {
    int width = 0, height = 0, red = 0, green = 0, dark = 0;  // counts of pixels near each colour
};

Decoded decode(const fs::path& path) {
    Decoded d;
    DecodedImage image;
    try {
        image = convert_channels(decode_image(path.string()), 3);
    } catch (const std::exception& e) {
        ADD_FAILURE() << e.what();
        return d;
    }
    d.width = int(image.width);
    d.height = int(image.height);
    const size_t plane = size_t(image.height * image.width);
    const uint8_t *red = image.pixels.data(), *green = red + plane, *blue = green + plane;
    for (size_t i = 0; i < plane; ++i) {
        const int r = red[i], g = green[i], b = blue[i];
        d.red += r > 180 && g < 80 && b < 80;
        d.green += g > 110 && r < 80 && b < 110;
        d.dark += r < 60 && g < 60 && b < 60;
    }
    return d;
}

std::string read_text(const fs::path& path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

std::vector<EpochRecord> records(int n) {
    std::vector<EpochRecord> r;
    for (int e = 1; e <= n; ++e)
        r.push_back({e, 1.0 / e, 0.9 - 0.4 / e, 1.2 / e, 0.85 - 0.4 / e, 10.0});
    return r;
}

void expect_curves(const fs::path& dir) {
    for (const char* name : {"loss", "accuracy"}) {
        const Decoded d = decode(dir / (std::string(name) + ".png"));
        EXPECT_EQ(d.width, 800) << name;
        EXPECT_EQ(d.height, 560) << name;
        EXPECT_GT(d.red, 50) << name << ": the train curve (red) is missing";
        EXPECT_GT(d.green, 50) << name << ": the test curve (green) is missing";
        EXPECT_GT(d.dark, 500) << name << ": axes and labels (black) are missing";
        const std::string svg = read_text(dir / (std::string(name) + ".svg"));
        EXPECT_NE(svg.find("<svg"), std::string::npos) << name;
        EXPECT_NE(svg.find("</svg>"), std::string::npos) << name << ".svg is cut short";
    }
    for (const auto& f : fs::directory_iterator(dir)) EXPECT_EQ(f.path().string().find(".tmp"), std::string::npos) << f.path();
}

TEST(WriteCurves, ManyEpochsQuietly) {
    const fs::path dir = scratch("many");
    ::testing::internal::CaptureStdout();
    ::testing::internal::CaptureStderr();
    write_curves(records(40), dir.string());  // past 30 epochs: lines without markers
    const std::string out = ::testing::internal::GetCapturedStdout(), err = ::testing::internal::GetCapturedStderr();
    EXPECT_EQ(out, "");
    EXPECT_EQ(err, "");
    expect_curves(dir);
}

TEST(WriteCurves, OneEpochStillShowsBothPoints) {
    const fs::path dir = scratch("one");
    write_curves(records(1), dir.string());
    expect_curves(dir);
}

TEST(WriteCurves, NonFiniteValuesAreLeftOut) {
    const fs::path dir = scratch("nan");
    auto r = records(3);
    r[1].test_loss = std::numeric_limits<double>::infinity();
    write_curves(r, dir.string());
    expect_curves(dir);
}

TEST(WriteCurves, Errors) {
    EXPECT_THROW(write_curves({}, scratch("empty").string()), std::invalid_argument);
    const fs::path file = scratch("not_a_folder") / "file";
    std::ofstream(file) << "x";
    EXPECT_THROW(write_curves(records(2), file.string()), std::runtime_error);
}

TEST(DrawRunPictures, WritesEveryPicture) {
    DenseNetConfig cfg = densenet_preset("densenet121", 10);
    Parameters initial(cfg), trained(cfg);
    init_parameters(initial, 1);
    init_parameters(trained, 2);
    const fs::path dir = scratch("run");
    ::testing::internal::CaptureStderr();
    draw_run_pictures(dir.string(), records(2), initial, trained);
    EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
    expect_curves(dir);
    for (const char* name : {"conv0_init", "conv0_trained", "conv0_diff"}) {
        const Decoded d = decode(dir / (std::string(name) + ".png"));
        EXPECT_EQ(d.width, 74 * 8) << name << ": 8x8 tiles of 7x7 with padding 2, enlarged 8x";
        EXPECT_EQ(d.height, 74 * 8) << name;
    }
    const Decoded layer = decode(dir / "denselayer1_conv1.png");
    EXPECT_EQ(layer.width, 26 * 23) << "8x8 tiles of 1x1 with padding 2, enlarged 23x";

    DenseNetConfig other = densenet_preset("densenet161", 10);
    Parameters different(other);
    EXPECT_THROW(draw_run_pictures(dir.string(), records(2), initial, different), std::invalid_argument);
}

}  // namespace
}  // namespace dn
