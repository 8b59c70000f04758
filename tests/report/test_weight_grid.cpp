// The weight grids against torchvision 0.14's make_grid + save_image, byte for byte
// (fixtures: tests/python/make_grid_reference.py).
#include "io/safetensors.h"
#include "report/weight_grid.h"
#include "test_util.h"

#include <gtest/gtest.h>

#include <cstring>

namespace dn {
namespace {

const std::string kDir = test::reference_dir() + "/make_grid";

std::vector<float> floats(const SafetensorsFile& f, const std::string& name) {
    const auto& t = f.tensors().at(name);
    std::vector<float> v(t.bytes / 4);
    std::memcpy(v.data(), t.data, t.bytes);
    return v;
}

const std::vector<int64_t>& shape(const SafetensorsFile& f, const std::string& name) { return f.tensors().at(name).shape; }

// Every pixel must be identical; on failure, the first few differences say where.
void expect_grid(const SafetensorsFile& grids, const std::string& name, const Picture& got) {
    const auto& want = grids.tensors().at(name);
    ASSERT_EQ(want.dtype, "I32");
    ASSERT_EQ(want.shape, (std::vector<int64_t>{got.height, got.width, 3})) << name;
    ASSERT_EQ(got.channels, 3);
    std::vector<int32_t> ref(want.bytes / 4);
    std::memcpy(ref.data(), want.data, want.bytes);
    int64_t mismatches = 0;
    for (size_t i = 0; i < ref.size(); ++i)
        if (ref[i] != int32_t(got.pixels[i]) && mismatches++ < 5)
            ADD_FAILURE() << name << ": pixel (" << i / 3 / size_t(got.width) << ", " << i / 3 % size_t(got.width)
                          << ") channel " << i % 3 << " is " << int(got.pixels[i]) << ", torchvision has " << ref[i];
    EXPECT_EQ(mismatches, 0) << name;
}

class WeightGrid : public ::testing::Test {
protected:
    SafetensorsFile weights{kDir + "/weights.safetensors"};
    SafetensorsFile grids{kDir + "/grids.safetensors"};
};

TEST_F(WeightGrid, Conv0KernelsAsRgbTiles) {
    const auto w = floats(weights, "conv0_before");
    const TileSet tiles = weight_tiles(w.data(), shape(weights, "conv0_before"));
    EXPECT_EQ(tiles.count, 64);
    EXPECT_EQ(tiles.channels, 3);
    expect_grid(grids, "conv0_before", make_grid(tiles));
}

TEST_F(WeightGrid, AbsoluteDifferenceOfTwoWeights) {
    const auto a = floats(weights, "conv0_after"), b = floats(weights, "conv0_before");
    const auto d = abs_difference(a.data(), b.data(), int64_t(a.size()));
    expect_grid(grids, "conv0_diff", make_grid(weight_tiles(d.data(), shape(weights, "conv0_after"))));
}

TEST_F(WeightGrid, OneOutputChannelOverItsInputsAsGreyTiles) {
    const auto w = floats(weights, "layer1");
    const TileSet tiles = weight_tiles(w.data(), shape(weights, "layer1"), 0);
    EXPECT_EQ(tiles.count, 64);
    EXPECT_EQ(tiles.channels, 1);
    expect_grid(grids, "layer1_channel0", make_grid(tiles));
    const auto c = floats(weights, "conv3");
    expect_grid(grids, "conv3_channel5", make_grid(weight_tiles(c.data(), shape(weights, "conv3"), 5)));
}

TEST_F(WeightGrid, SingleInputChannelKernelsFlatWeightsAndOneTile) {
    const auto g = floats(weights, "grey");
    expect_grid(grids, "grey", make_grid(weight_tiles(g.data(), shape(weights, "grey"))));
    const auto f = floats(weights, "flat");
    expect_grid(grids, "flat", make_grid(weight_tiles(f.data(), shape(weights, "flat"))));
    const auto w = floats(weights, "conv0_before");
    expect_grid(grids, "single", make_grid({w.data(), 1, 3, 7, 7}));
}

TEST(WeightTiles, RejectsWhatIsNotAConvWeight) {
    const float w[16] = {};
    EXPECT_THROW(weight_tiles(w, {16}), std::invalid_argument);
    EXPECT_THROW(weight_tiles(w, {4, 0, 2, 2}), std::invalid_argument);
    EXPECT_THROW(weight_tiles(w, {2, 2, 2, 2}, 2), std::invalid_argument);
    EXPECT_THROW(weight_tiles(w, {2, 2, 2, 2}, -1), std::invalid_argument);
}

TEST(Enlarge, CopiesEachPixelIntoASquareBlock) {
    const Picture p{1, 2, 1, {10, 20}};
    const Picture big = enlarge(p, 3);
    ASSERT_EQ(big.height, 3);
    ASSERT_EQ(big.width, 6);
    EXPECT_EQ(big.pixels, (std::vector<uint8_t>{10, 10, 10, 20, 20, 20, 10, 10, 10, 20, 20, 20, 10, 10, 10, 20, 20, 20}));
    EXPECT_THROW(enlarge(p, 0), std::invalid_argument);
}

}  // namespace
}  // namespace dn
