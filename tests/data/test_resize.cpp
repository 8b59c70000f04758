// Pillow-exact bilinear resize: every case make_image_reference.py wrote, byte for byte.
#include "data/resize.h"
#include "test_util.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <iterator>

namespace dn {
namespace {

std::string resize_dir() { return test::reference_dir() + "/images/resize"; }

std::vector<uint8_t> read_bytes(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw std::runtime_error("cannot open '" + path + "' (run the make_image_reference fixture)");
    return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

struct Case {
    std::string name;
    int64_t channels, in_h, in_w, out_h, out_w;
};

std::vector<Case> cases() {
    std::ifstream f(resize_dir() + "/manifest.txt");
    std::vector<Case> all;
    Case c;
    while (f >> c.name >> c.channels >> c.in_h >> c.in_w >> c.out_h >> c.out_w) all.push_back(c);
    return all;
}

TEST(Resize, MatchesPillowBilinearInEveryCase) {
    const auto all = cases();
    ASSERT_GE(all.size(), 21u) << "manifest in " << resize_dir();
    int64_t equal = 0, total = 0;
    for (const auto& c : all) {
        const std::vector<uint8_t> in = read_bytes(resize_dir() + "/" + c.name + ".in");
        const std::vector<uint8_t> want = read_bytes(resize_dir() + "/" + c.name + ".out");
        ASSERT_EQ(int64_t(in.size()), c.channels * c.in_h * c.in_w) << c.name;
        ASSERT_EQ(int64_t(want.size()), c.channels * c.out_h * c.out_w) << c.name;

        const ResizePlan plan = make_resize_plan(c.in_h, c.in_w, c.out_h, c.out_w);
        std::vector<uint8_t> scratch(size_t(plan.scratch_bytes())), got(want.size()), again(want.size());
        resize_bilinear(got.data(), in.data(), c.channels, plan, scratch.data());
        resize_bilinear(again.data(), c.out_h, c.out_w, in.data(), c.channels, c.in_h, c.in_w);
        EXPECT_EQ(got, again) << c.name << ": the plan and the convenience function disagree";

        int max_diff = 0;
        int64_t case_equal = 0;
        for (size_t i = 0; i < want.size(); ++i) {
            max_diff = std::max(max_diff, std::abs(int(got[i]) - int(want[i])));
            case_equal += got[i] == want[i];
        }
        std::printf("%-28s max |diff| %d, %.4f%% of bytes equal to PIL's\n", c.name.c_str(), max_diff,
                    100.0 * double(case_equal) / double(want.size()));
        EXPECT_LE(max_diff, 1) << c.name;
        equal += case_equal;
        total += int64_t(want.size());
    }
    std::printf("all cases: %.4f%% of %lld bytes equal to PIL's\n", 100.0 * double(equal) / double(total), (long long)total);
    EXPECT_EQ(equal, total) << "not bit-exact with Pillow";
}

TEST(Resize, OneChannelOfManyIsTheSameAsAlone) {
    const ResizePlan plan = make_resize_plan(7, 9, 20, 4);
    std::vector<uint8_t> src(3 * 7 * 9), all(3 * 20 * 4), one(20 * 4), scratch(size_t(plan.scratch_bytes()));
    for (size_t i = 0; i < src.size(); ++i) src[i] = uint8_t(i * 37 + 11);
    resize_bilinear(all.data(), src.data(), 3, plan, scratch.data());
    resize_bilinear(one.data(), src.data() + 2 * 7 * 9, 1, plan, scratch.data());
    EXPECT_TRUE(std::equal(one.begin(), one.end(), all.begin() + 2 * 20 * 4));
}

TEST(Resize, ConstantImageStaysConstant) {
    std::vector<uint8_t> src(3 * 32 * 32, 200), dst(3 * 224 * 224);
    resize_bilinear(dst.data(), 224, 224, src.data(), 3, 32, 32);
    for (uint8_t v : dst) ASSERT_EQ(v, 200);
}

TEST(Resize, RejectsEmptySizes) {
    EXPECT_THROW(make_resize_plan(0, 32, 224, 224), std::invalid_argument);
    EXPECT_THROW(make_resize_plan(32, 32, 224, -1), std::invalid_argument);
}

// Not a bound, a number to watch: CIFAR-10 at 224 resizes every image every step.
TEST(Resize, SpeedOfCifarTo224) {
    const ResizePlan plan = make_resize_plan(32, 32, 224, 224);
    std::vector<uint8_t> src(3 * 32 * 32), dst(3 * 224 * 224), scratch(size_t(plan.scratch_bytes()));
    for (size_t i = 0; i < src.size(); ++i) src[i] = uint8_t(i * 131);
    const int n = 500;
    const std::clock_t t0 = std::clock();  // CPU time: the machine is shared, wall time would mislead
    for (int i = 0; i < n; ++i) resize_bilinear(dst.data(), src.data(), 3, plan, scratch.data());
    const double s = double(std::clock() - t0) / CLOCKS_PER_SEC;
    std::printf("32x32 -> 224x224 RGB: %.1f us of CPU per image\n", 1e6 * s / n);
}

}  // namespace
}  // namespace dn
