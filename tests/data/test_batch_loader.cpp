// The batch loader: what an epoch delivers is a function of (seed, epoch) only, never of thread
// timing; resuming at batch k gives the rest of the same epoch; and the transforms do what
// torchvision's do (the resize itself is checked against PIL in test_resize).
#include "data/batch_loader.h"

#include <gtest/gtest.h>

#include <chrono>
#include <set>

using namespace dn;

namespace {
// Image i is filled with the value i (mod 256) in channel 0 and 255 - i in the others.
ImageSet numbered_set(int64_t count, int64_t channels, int64_t side) {
    ImageSet set;
    set.count = count, set.channels = channels, set.height = set.width = side;
    for (int64_t i = 0; i < count; ++i) {
        for (int64_t c = 0; c < channels; ++c)
            for (int64_t p = 0; p < side * side; ++p) set.pixels.push_back(uint8_t(c == 0 ? i % 256 : 255 - i % 256));
        set.labels.push_back(int32_t(i % 10));
    }
    set.class_names = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};
    return set;
}

std::vector<std::vector<float>> epoch_images(BatchLoader& loader, int64_t epoch, int64_t first_batch = 0) {
    std::vector<std::vector<float>> out;
    loader.start_epoch(epoch, first_batch);
    while (const Batch* b = loader.next()) out.push_back(b->images);
    return out;
}
}  // namespace

TEST(BatchLoader, SameSeedSameBatchesWhateverTheThreadCount) {
    const ImageSet set = numbered_set(50, 3, 8);
    const Transform t{8, 3, Augment{.crop = Crop::padded, .flip = true}, {}};
    BatchLoader one(set, t, {4, Order::shuffled, LastBatch::drop, 0, 7, 1});
    BatchLoader three(set, t, {4, Order::shuffled, LastBatch::drop, 0, 7, 3});
    BatchLoader inline_loader(set, t, {4, Order::shuffled, LastBatch::drop, 0, 7, 0});
    EXPECT_EQ(one.batches_per_epoch(), 12);
    const auto a = epoch_images(one, 2), b = epoch_images(three, 2);
    ASSERT_EQ(a.size(), 12u);
    EXPECT_EQ(a, b);
    EXPECT_EQ(epoch_images(inline_loader, 2), a);
    EXPECT_NE(epoch_images(one, 3), a);  // a new epoch, a new order
    BatchLoader other_seed(set, t, {4, Order::shuffled, LastBatch::drop, 0, 8, 1});
    EXPECT_NE(epoch_images(other_seed, 2), a);
}

// The trainer reports the workers' busy time: it is real work (resizing 64 images to 96x96 per
// batch), spent on the workers, and no more than they could have spent.
TEST(BatchLoader, CountsTheTimeItsWorkersSpend) {
    const ImageSet set = numbered_set(256, 3, 32);
    const Transform t{96, 3, Augment{}, {}};
    BatchLoader worker(set, t, {64, Order::shuffled, LastBatch::drop, 0, 1, 2});
    BatchLoader inline_loader(set, t, {64, Order::shuffled, LastBatch::drop, 0, 1, 0});
    EXPECT_EQ(worker.busy_seconds(), 0.0);
    const auto start = std::chrono::steady_clock::now();
    epoch_images(worker, 1);
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_GT(worker.busy_seconds(), 0.0);
    EXPECT_LE(worker.busy_seconds(), 2.0 * wall);
    epoch_images(inline_loader, 1);
    EXPECT_EQ(inline_loader.busy_seconds(), 0.0);  // its work is the caller's wait instead
    EXPECT_GT(inline_loader.wait_seconds(), 0.0);
}

TEST(BatchLoader, ResumingMidEpochGivesTheRestOfThatEpoch) {
    const ImageSet set = numbered_set(40, 1, 6);
    const Transform t{6, 3, Augment{.crop = Crop::padded, .flip = true}, {}};
    BatchLoader loader(set, t, {5, Order::shuffled, LastBatch::drop, 0, 3, 2});
    const auto whole = epoch_images(loader, 4);
    const auto tail = epoch_images(loader, 4, 3);
    ASSERT_EQ(tail.size(), whole.size() - 3);
    for (size_t k = 0; k < tail.size(); ++k) EXPECT_EQ(tail[k], whole[k + 3]);
}

TEST(BatchLoader, ShuffledEpochsArePermutationsAndSequentialKeepsOrder) {
    const ImageSet set = numbered_set(23, 1, 4);
    const Transform t{4, 1, Augment{}, {}};
    BatchLoader shuffled(set, t, {5, Order::shuffled, LastBatch::drop, 0, 1, 2});
    std::multiset<int> seen;
    shuffled.start_epoch(1);
    while (const Batch* b = shuffled.next())
        for (int64_t i = 0; i < b->size; ++i) seen.insert(int(std::lround(b->images[size_t(i * 16)] * 255)));
    EXPECT_EQ(seen.size(), 20u);  // 4 full batches; the short one is dropped
    EXPECT_EQ(std::set<int>(seen.begin(), seen.end()).size(), 20u);

    BatchLoader sequential(set, t, {5, Order::sequential, LastBatch::keep, 0, 1, 2});
    EXPECT_EQ(sequential.images_per_epoch(), 23);
    sequential.start_epoch(1);
    int64_t expected = 0;
    while (const Batch* b = sequential.next()) {
        for (int64_t i = 0; i < b->size; ++i, ++expected) {
            EXPECT_FLOAT_EQ(b->images[size_t(i * 16)], float(expected) / 255.0f);
            EXPECT_EQ(b->labels[size_t(i)], expected % 10);
        }
        if (b->size < 5) {
            EXPECT_EQ(b->size, 3);
            EXPECT_EQ(b->images[size_t(3 * 16)], 0.0f);  // the short batch's unused rows are zero
        }
    }
    EXPECT_EQ(expected, 23);
}

TEST(BatchLoader, GreyIsRepeatedAndNormalisedAsTorchvision) {
    const ImageSet set = numbered_set(2, 1, 4);
    const Transform t{4, 3, Augment{}, {{0.485f, 0.456f, 0.406f}, {0.229f, 0.224f, 0.225f}}};
    BatchLoader loader(set, t, {2, Order::sequential, LastBatch::keep, 0, 0, 1});
    loader.start_epoch(1);
    const Batch* b = loader.next();
    for (int c = 0; c < 3; ++c) {
        const float expected = (1.0f / 255.0f - t.normalization.mean[size_t(c)]) / t.normalization.std[size_t(c)];
        EXPECT_EQ(b->images[size_t((1 * 3 + c) * 16 + 5)], expected);
    }
}

TEST(BatchLoader, FlipCropMovesPixelsAndPadsWithZeros) {
    // One image whose pixel value is its column: a flip reverses the row, a crop shifts it.
    ImageSet set;
    set.count = 1, set.channels = 1, set.height = set.width = 16;
    for (int y = 0; y < 16; ++y)
        for (int x = 0; x < 16; ++x) set.pixels.push_back(uint8_t(x + 1));
    set.labels = {0};
    set.class_names = {"a"};
    const Transform t{16, 1, Augment{.crop = Crop::padded, .flip = true}, {}};
    std::set<std::vector<float>> distinct;
    for (uint64_t seed = 0; seed < 40; ++seed) {
        BatchLoader loader(set, t, {1, Order::sequential, LastBatch::keep, 0, seed, 1});
        loader.start_epoch(1);
        const Batch* b = loader.next();
        std::vector<float> row(b->images.begin() + 8 * 16, b->images.begin() + 9 * 16);
        // Each row is a run of consecutive columns, ascending or descending, with zeros for padding.
        int steps_up = 0, steps_down = 0;
        for (int x = 1; x < 16; ++x) {
            if (row[size_t(x)] == 0 || row[size_t(x - 1)] == 0) continue;
            const int d = int(std::lround((row[size_t(x)] - row[size_t(x - 1)]) * 255));
            steps_up += d == 1, steps_down += d == -1;
            EXPECT_TRUE(d == 1 || d == -1);
        }
        EXPECT_TRUE(steps_up == 0 || steps_down == 0);
        distinct.insert(row);
    }
    EXPECT_GE(distinct.size(), 8u);  // of the 10 possible rows (5 shifts x flip): crops and flips really vary
}

TEST(BatchLoader, RejectsImpossibleRequests) {
    const ImageSet set = numbered_set(3, 3, 4);
    EXPECT_THROW(BatchLoader(set, {4, 3, Augment{}, {}}, {0, Order::sequential, LastBatch::keep, 0, 0, 1}),
                 std::invalid_argument);
    EXPECT_THROW(BatchLoader(set, {4, 3, Augment{}, {}}, {4, Order::shuffled, LastBatch::drop, 0, 0, 1}),
                 std::invalid_argument);  // fewer images than one batch
    EXPECT_THROW(BatchLoader(set, {4, 1, Augment{}, {}}, {1, Order::sequential, LastBatch::keep, 0, 0, 1}),
                 std::invalid_argument);  // 3 channels into a 1-channel model
}
