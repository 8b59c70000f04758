// The augmentations against torchvision (make_augment_reference.py): RandomResizedCrop's crop and
// resize byte for byte on given boxes, and, since torch's generator cannot be shared, the
// distribution of its boxes and of RandomErasing's against 20000 of torchvision's own draws;
// then what transform_image does with them.
#include "data/transform.h"
#include "test_util.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>
#include <iterator>

namespace dn {
namespace {

std::string augment_dir() { return test::reference_dir() + "/augment"; }

std::vector<uint8_t> read_bytes(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw std::runtime_error("cannot open '" + path + "' (run the make_augment_reference fixture)");
    return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

TEST(ResizedCrop, IsTorchvisionsResizedCropByteForByte) {
    std::ifstream manifest(augment_dir() + "/resized_crop/manifest.txt");
    std::string name;
    int64_t channels, in_h, in_w, size;
    CropBox box;
    int checked = 0;
    std::vector<uint8_t> scratch;
    while (manifest >> name >> channels >> in_h >> in_w >> box.top >> box.left >> box.height >> box.width >> size) {
        const std::vector<uint8_t> in = read_bytes(augment_dir() + "/resized_crop/" + name + ".in");
        const std::vector<uint8_t> want = read_bytes(augment_dir() + "/resized_crop/" + name + ".out");
        std::vector<uint8_t> out(size_t(channels * size * size));
        crop_and_resize(out.data(), size, in.data(), channels, in_h, in_w, box, scratch);
        EXPECT_EQ(out, want) << name;
        ++checked;
    }
    EXPECT_EQ(checked, 6);
    EXPECT_THROW(crop_and_resize(nullptr, 4, nullptr, 1, 8, 8, {5, 0, 4, 4}, scratch), std::invalid_argument);
}

struct Moments {
    std::vector<double> mean, std;
    int64_t count = 0;
};

Moments moments(const std::vector<CropBox>& boxes) {
    Moments m{std::vector<double>(4), std::vector<double>(4), int64_t(boxes.size())};
    std::vector<double> sq(4);
    for (const CropBox& b : boxes) {
        const double v[4] = {double(b.top), double(b.left), double(b.height), double(b.width)};
        for (int k = 0; k < 4; ++k) m.mean[size_t(k)] += v[k], sq[size_t(k)] += v[k] * v[k];
    }
    for (size_t k = 0; k < 4; ++k) {
        m.mean[k] /= double(m.count);
        m.std[k] = std::sqrt(std::max(0.0, sq[k] / double(m.count) - m.mean[k] * m.mean[k]));
    }
    return m;
}

// Each of top, left, height and width: means within 5 standard errors of torchvision's, spreads
// within 5%; a sampler off by one pixel or with a wrong range fails at these counts.
void expect_same_distribution(const Moments& ours, const nlohmann::json& theirs, const std::string& what) {
    const char* names[] = {"top", "left", "height", "width"};
    const double n_theirs = theirs.at("count");
    for (size_t k = 0; k < 4; ++k) {
        const double m = theirs["mean"][k], s = theirs["std"][k];
        const double standard_error = std::sqrt(s * s / n_theirs + ours.std[k] * ours.std[k] / double(ours.count));
        EXPECT_LE(std::abs(ours.mean[k] - m), 5.0 * standard_error + 1e-9)
            << what << " " << names[k] << ": mean " << ours.mean[k] << " vs torchvision's " << m;
        EXPECT_LE(std::abs(ours.std[k] - s), 0.05 * s + 1e-9) << what << " " << names[k] << ": spread " << ours.std[k] << " vs " << s;
    }
}

nlohmann::json draws() {
    std::ifstream f(augment_dir() + "/draws.json");
    return nlohmann::json::parse(f);
}

TEST(ResizedCrop, BoxesAreDistributedAsTorchvisions) {
    const nlohmann::json all = draws().at("crop");
    std::mt19937_64 rng(1);
    for (const auto& [shape, theirs] : all.items()) {
        const int64_t h = std::stoll(shape), w = std::stoll(shape.substr(shape.find('x') + 1));
        std::vector<CropBox> boxes;
        for (int i = 0; i < 20000; ++i) {
            boxes.push_back(random_resized_crop_box(h, w, rng));
            const CropBox& b = boxes.back();
            ASSERT_TRUE(b.top >= 0 && b.left >= 0 && b.height > 0 && b.width > 0 && b.top + b.height <= h && b.left + b.width <= w);
        }
        const Moments ours = moments(boxes);
        std::printf("RandomResizedCrop on %s: mean box (%.2f, %.2f, %.2f, %.2f), torchvision's (%.2f, %.2f, %.2f, %.2f)\n",
                    shape.c_str(), ours.mean[0], ours.mean[1], ours.mean[2], ours.mean[3], double(theirs["mean"][0]),
                    double(theirs["mean"][1]), double(theirs["mean"][2]), double(theirs["mean"][3]));
        expect_same_distribution(ours, theirs, "RandomResizedCrop " + shape);
    }
}

TEST(RandomErasing, BoxesAreDistributedAsTorchvisions) {
    const nlohmann::json all = draws().at("erase");
    std::mt19937_64 rng(2);
    for (const auto& [shape, theirs] : all.items()) {
        const int64_t h = std::stoll(shape), w = std::stoll(shape.substr(shape.find('x') + 1));
        std::vector<CropBox> boxes;
        const int tried = theirs.at("tried");
        for (int i = 0; i < tried; ++i)
            if (const auto b = erasing_box(h, w, rng)) boxes.push_back(*b);
        // How often no box fits in ten tries, against torchvision's share (binomial spread).
        const double p = double(theirs.at("count")) / tried, ours_p = double(boxes.size()) / tried;
        EXPECT_LE(std::abs(ours_p - p), 5.0 * std::sqrt(2.0 * p * (1 - p) / tried) + 1e-9) << shape;
        expect_same_distribution(moments(boxes), theirs, "RandomErasing " + shape);
    }
}

ImageSet column_image(int64_t size) {  // one grey image whose pixel value is its column + 1
    ImageSet set;
    set.count = 1, set.channels = 1, set.height = set.width = size;
    for (int64_t y = 0; y < size; ++y)
        for (int64_t x = 0; x < size; ++x) set.pixels.push_back(uint8_t(x + 1));
    set.labels = {0};
    set.class_names = {"a"};
    return set;
}

TEST(Transform, ErasingZeroesABoxInEveryChannelAboutHalfTheTime) {
    const ImageSet set = column_image(16);
    const Transform t{.size = 16, .channels = 3, .augment = parse_augment("erase"), .normalization = {}};
    std::vector<float> out(3 * 256);
    std::vector<uint8_t> scratch;
    int erased = 0;
    for (uint64_t seed = 0; seed < 2000; ++seed) {
        std::mt19937_64 rng(seed);
        transform_image(out.data(), set, 0, t, rng, scratch);
        int zeros = 0;
        for (int p = 0; p < 256; ++p) {
            const bool zero = out[size_t(p)] == 0.0f;
            zeros += zero;
            EXPECT_EQ(zero, out[size_t(256 + p)] == 0.0f);  // the same box in every channel
            EXPECT_EQ(zero, out[size_t(512 + p)] == 0.0f);
        }
        erased += zeros > 0;
        EXPECT_LT(zeros, 256);
    }
    EXPECT_NEAR(erased / 2000.0, 0.5 * 0.99, 0.05);  // p = 0.5; a box fits in ten tries nearly always
}

TEST(Transform, ResizedCropFlipAndNamesOfAugmentations) {
    const Augment a = parse_augment("resized-crop,flip,erase");
    EXPECT_EQ(a.crop, Crop::resized);
    EXPECT_TRUE(a.flip);
    EXPECT_EQ(a.erase_probability, 0.5);
    EXPECT_EQ(parse_augment("flip-crop").crop, Crop::padded);
    EXPECT_TRUE(parse_augment("flip-crop").flip);
    EXPECT_EQ(parse_augment("none").crop, Crop::none);
    EXPECT_THROW(parse_augment("mixup"), std::invalid_argument);
    EXPECT_THROW(parse_augment("flip,"), std::invalid_argument);

    // A resized crop of the column image keeps each row increasing (or decreasing when flipped).
    const ImageSet set = column_image(28);
    const Transform t{.size = 32, .channels = 1, .augment = parse_augment("resized-crop,flip"), .normalization = {}};
    std::vector<float> out(32 * 32);
    std::vector<uint8_t> scratch;
    int flipped = 0;
    for (uint64_t seed = 0; seed < 400; ++seed) {
        std::mt19937_64 rng(seed);
        transform_image(out.data(), set, 0, t, rng, scratch);
        const float* row = out.data() + 16 * 32;
        flipped += row[0] > row[31];
        for (int x = 1; x < 32; ++x) EXPECT_TRUE(row[0] > row[31] ? row[x] <= row[x - 1] : row[x] >= row[x - 1]);
    }
    EXPECT_NEAR(flipped / 400.0, 0.5, 0.1);
}

}  // namespace
}  // namespace dn
