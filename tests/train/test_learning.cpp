// Learning on real data: a small DenseNet trained briefly on Fashion-MNIST (Debian's
// dataset-fashion-mnist package) must classify held-out images far above chance.
#include "data/idx.h"
#include "model/densenet.h"
#include "model/init.h"
#include "train/optimizer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <numeric>
#include <random>

namespace dn {
namespace {

const char* kDir = "/usr/share/datasets/fashion-mnist";

struct Learned {
    double last_epoch_loss = 0.0;  // mean training loss over the second epoch
    double accuracy = 0.0;         // on the first 1000 test images, in eval mode
};

// DenseNet-BC with the small-image stem: growth 12, blocks 2-2-2, at Fashion-MNIST's own 28x28,
// trained for 2 epochs on the first 3200 training images.
Learned train_and_test(Precision precision, uint64_t seed) {
    ImageSet train = load_idx(std::string(kDir) + "/train-images-idx3-ubyte.gz", std::string(kDir) + "/train-labels-idx1-ubyte.gz");
    ImageSet test = load_idx(std::string(kDir) + "/t10k-images-idx3-ubyte.gz", std::string(kDir) + "/t10k-labels-idx1-ubyte.gz");
    EXPECT_EQ(train.count, 60000);
    EXPECT_EQ(test.count, 10000);

    DenseNetConfig cfg;
    cfg.arch = "custom";
    cfg.growth_rate = 12, cfg.block_config = {2, 2, 2}, cfg.num_init_features = 24;
    cfg.num_classes = 10, cfg.in_channels = 1, cfg.stem = Stem::small_inputs;
    Parameters params(cfg);
    init_parameters(params, seed);
    DnnlContext ctx;
    const int64_t B = 32, train_images = 3200, test_images = 1000;
    DenseNet net(ctx, params, {B, 28, 28}, Pass::training, Intermediates::recompute, precision);
    AdamOptions o;
    // At 2e-3 the eval-mode accuracy swung with the running statistics, which lag weights that
    // move fast (48.7-74.7% over seeds 42-45 and two summation orders of the batch statistics);
    // at 1e-3 it held 70.6-74.7% over the same runs.
    o.lr = 1e-3;
    Adam adam(params.count(), o);

    std::vector<float> x(size_t(B * 28 * 28));
    std::vector<int32_t> order(static_cast<size_t>(train_images));
    std::iota(order.begin(), order.end(), 0);
    std::mt19937 rng(7);
    Learned learned;
    for (int epoch = 0; epoch < 2; ++epoch) {
        learned.last_epoch_loss = 0.0;
        std::shuffle(order.begin(), order.end(), rng);
        for (int64_t b = 0; b + B <= train_images; b += B) {
            std::vector<int32_t> y(static_cast<size_t>(B));
            for (int64_t i = 0; i < B; ++i) {
                train.to_tensor(x.data() + i * 28 * 28, order[size_t(b + i)], 1);
                y[size_t(i)] = train.labels[size_t(order[size_t(b + i)])];
            }
            float loss = net.forward(x.data(), y.data(), Mode::train);
            EXPECT_TRUE(std::isfinite(loss));
            if (!std::isfinite(loss)) return {};
            learned.last_epoch_loss += loss / double(train_images / B);
            net.backward();
            adam.step(params.values(), params.grads());
            net.load_weights();
        }
    }

    int64_t correct = 0;
    for (int64_t b = 0; b < test_images; b += B) {
        const int64_t n = std::min(B, test_images - b);
        std::vector<int32_t> y(size_t(B), 0);
        std::fill(x.begin(), x.end(), 0.0f);
        test.to_tensor(x.data(), b, n);
        for (int64_t i = 0; i < n; ++i) y[size_t(i)] = test.labels[size_t(b + i)];
        net.forward(x.data(), y.data(), Mode::eval);
        for (int64_t i = 0; i < n; ++i) {
            const float* z = net.logits() + i * 10;
            correct += (std::max_element(z, z + 10) - z) == y[size_t(i)];
        }
    }
    learned.accuracy = double(correct) / double(test_images);
    std::printf("Fashion-MNIST after 2 epochs on %ld images, %s, seed %lu: test accuracy %.1f%%, second epoch's mean "
                "loss %.4f\n",
                long(train_images), precision_name(precision), static_cast<unsigned long>(seed), 100 * learned.accuracy,
                learned.last_epoch_loss);
    return learned;
}

TEST(Learning, FashionMnistWellAboveChance) {
    // Chance is 10%, and a network whose gradients or updates are wrong stays near it. This run
    // measured 74.5%; the bar is 60% so that thread count and rounding never decide the result.
    EXPECT_GE(train_and_test(Precision::fp32, 42).accuracy, 0.60);
}

// bf16 mixed precision must learn as fp32 does, in the same run from the same seed. This run is
// too short for its test accuracy to compare the two: after 200 steps the eval-mode accuracy
// swings with the running statistics (at lr 2e-3, fp32 alone measured 62-73% over seeds 42-49,
// and bf16 56-74%, by up to 16 points from fp32 for one seed). The training loss does not swing:
// over seeds 42-45 bf16's second-epoch loss was within 0.1-1.2% of fp32's, while seeds differ
// from each other by up to 8%. So the loss is held to 5% of fp32's, and the accuracy only to far
// above chance. (The figure, test accuracy within 0.5
// points of fp32, needs a real run: densenet121 on 20000 images for 5 epochs measured +0.36
// and -0.04 points for two seeds.)
TEST(Learning, Bf16LearnsAsFp32Does) {
    if (!cpu_has_bf16()) GTEST_SKIP() << "this CPU has no AVX512-BF16";
    const Learned fp32 = train_and_test(Precision::fp32, 42), bf16 = train_and_test(Precision::bf16, 42);
    EXPECT_NEAR(bf16.last_epoch_loss, fp32.last_epoch_loss, 0.05 * fp32.last_epoch_loss);
    EXPECT_GE(bf16.accuracy, 0.40);
}

}  // namespace
}  // namespace dn
