// The epoch loop's contract: it counts what it trains on, stops where asked and can continue
// from there, and a loss that turns NaN stops it before the bad step touches the weights.
#include "data/batch_loader.h"
#include "model/init.h"
#include "train/cpu_step_engine.h"
#include "train/time_budget.h"
#include "train/trainer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

namespace dn {
namespace {

DenseNetConfig tiny_config() {
    DenseNetConfig cfg;
    cfg.arch = "custom";
    cfg.growth_rate = 4, cfg.block_config = {1, 1}, cfg.num_init_features = 8;
    cfg.num_classes = 3, cfg.in_channels = 1, cfg.stem = Stem::small_inputs;
    return cfg;
}

ImageSet random_set(int64_t count) {
    ImageSet set;
    set.count = count, set.channels = 1, set.height = set.width = 8;
    std::mt19937 rng(5);
    for (int64_t i = 0; i < count * 64; ++i) set.pixels.push_back(uint8_t(rng() & 0xff));
    for (int64_t i = 0; i < count; ++i) set.labels.push_back(int32_t(i % 3));
    set.class_names = {"a", "b", "c"};
    return set;
}

struct Fixture {
    DenseNetConfig cfg = tiny_config();
    Parameters params{cfg};
    ImageSet set = random_set(24);
    BatchLoader loader{set, {8, 1, Augment{}, {}}, {4, Order::shuffled, LastBatch::drop, 0, 1, 1}};
    Adam adam{params.count(), AdamOptions{}};
    ParameterUpdate update{adam, {}};
    std::unique_ptr<Communicator> alone = single_process();
    DataParallel replicas{*alone, params, 4, BatchNormStats::global};
    std::unique_ptr<CpuStepEngine> engine;

    Fixture() {
        init_parameters(params, 3);
        engine = std::make_unique<CpuStepEngine>(params, update, replicas, StepEngineSetup{.shape = {4, 8, 8}});
        engine->from_host();
    }
};

EpochSpan whole(const Fixture& f, int64_t epoch, int64_t epochs) {
    return {.epoch = epoch, .epochs = epochs, .batches = f.loader.batches_per_epoch()};
}

TEST(Trainer, CountsAnEpochAndStopsWhereAsked) {
    Fixture f;
    EpochTotals totals;
    StopRequest stop{nullptr, 4, 0};
    EXPECT_EQ(train_epoch(*f.engine, f.loader, whole(f, 1, 1), totals, stop, f.replicas), EpochEnd::stopped);
    EXPECT_EQ(totals.next_batch, 4);
    EXPECT_EQ(totals.seen, 16);
    EXPECT_EQ(f.adam.steps(), 4);
    stop.max_steps = 0;
    EXPECT_EQ(train_epoch(*f.engine, f.loader, whole(f, 1, 1), totals, stop, f.replicas), EpochEnd::completed);
    EXPECT_EQ(totals.next_batch, 6);
    EXPECT_EQ(totals.seen, 24);
    EXPECT_EQ(f.adam.steps(), 6);
    EXPECT_GT(totals.loss_sum / double(totals.seen), 0.0);
    EXPECT_LE(totals.correct, totals.seen);

    std::atomic<bool> interrupted{true};
    EpochTotals next;
    StopRequest ctrl_c{&interrupted, 0, 0};
    EXPECT_EQ(train_epoch(*f.engine, f.loader, whole(f, 2, 2), next, ctrl_c, f.replicas), EpochEnd::stopped);
    EXPECT_EQ(next.next_batch, 0);
}

// A time budget's last epoch ends early: after its own count of steps, completed (so tested),
// and resumable from a stop inside it.
TEST(Trainer, AShortLastEpochEndsAfterItsSteps) {
    Fixture f;
    EpochTotals totals;
    StopRequest stop{nullptr, 2, 0};
    const EpochSpan short_epoch{.epoch = 3, .epochs = 3, .batches = 5};
    EXPECT_EQ(train_epoch(*f.engine, f.loader, short_epoch, totals, stop, f.replicas), EpochEnd::stopped);
    EXPECT_EQ(totals.next_batch, 2);
    stop.max_steps = 0;
    EXPECT_EQ(train_epoch(*f.engine, f.loader, short_epoch, totals, stop, f.replicas), EpochEnd::completed);
    EXPECT_EQ(totals.next_batch, 5);
    EXPECT_EQ(totals.seen, 20);
    EXPECT_EQ(f.adam.steps(), 5);
}

TEST(Trainer, ANonFiniteLossStopsBeforeTheStep) {
    Fixture f;
    f.params.classifier.bias[0] = std::numeric_limits<float>::quiet_NaN();
    const std::vector<float> before(f.params.values(), f.params.values() + f.params.count());
    EpochTotals totals;
    StopRequest stop;
    EXPECT_EQ(train_epoch(*f.engine, f.loader, whole(f, 1, 1), totals, stop, f.replicas), EpochEnd::diverged);
    EXPECT_EQ(f.adam.steps(), 0);
    EXPECT_EQ(totals.seen, 0);
    for (int64_t i = 0; i < f.params.count(); ++i) {
        if (std::isnan(before[size_t(i)])) continue;  // the injected NaN
        ASSERT_EQ(f.params.values()[i], before[size_t(i)]) << i;
    }
}

// Timing a budget run's steps trains with the run's own update, then leaves no trace: weights,
// running statistics, batch counts, the optimizer's state and its step count are as before.
TEST(Trainer, TimingStepsLeavesTheRunAsItWas) {
    Fixture f;
    ImageSet test_set = random_set(8);
    BatchLoader test_loader{test_set, {8, 1, Augment{}, {}}, {4, Order::sequential, LastBatch::keep, 0, 1, 1}};
    Parameters before(f.cfg);
    before.copy_state_from(f.params);
    const StepTimes times = time_steps(*f.engine, f.params, f.adam, nullptr, f.loader, test_loader, 3, TestTimeAugment::none);
    EXPECT_GT(times.train_step_seconds, 0.0);
    EXPECT_GT(times.test_batch_seconds, 0.0);
    EXPECT_EQ(f.adam.steps(), 0);
    for (std::span<float> state : f.adam.state_arrays())
        for (float x : state) ASSERT_EQ(x, 0.0f);
    for (int64_t i = 0; i < f.params.count(); ++i) ASSERT_EQ(f.params.values()[i], before.values()[i]) << i;
    for (int64_t i = 0; i < f.params.running_count(); ++i)
        ASSERT_EQ(f.params.running_stats()[i], before.running_stats()[i]) << i;
    // and the engine trains on from there as if nothing had been timed
    EpochTotals totals;
    StopRequest stop{nullptr, 1, 0};
    EXPECT_EQ(train_epoch(*f.engine, f.loader, whole(f, 1, 1), totals, stop, f.replicas), EpochEnd::stopped);
    EXPECT_EQ(f.adam.steps(), 1);
}

}  // namespace
}  // namespace dn
