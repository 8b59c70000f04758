// The memory plan and oneDNN's choices for densenet121 at the lecture's shape (224x224, batch 32).
#include "model/densenet.h"
#include "model/inference_chunk.h"
#include "model/init.h"
#include "ops/precision.h"
#include "test_util.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <utility>
#include <vector>

namespace dn {
namespace {

// oneDNN 2.6 silently falls back to its reference kernels (about 1000x slower) for operands it
// cannot handle, such as sub-memory views. No primitive on the hot path may be one.
// Inference's convolutions carry the folded norms' bias and ReLU (ConvEpilogue).
TEST(Plan, NoReferenceKernelOnTheHotPath) {
    for (Pass pass : {Pass::training, Pass::inference}) {
        DnnlContext ctx;
        Parameters params(densenet_preset("densenet121", 10));
        DenseNet net(ctx, params, {32, 224, 224}, pass, Intermediates::recompute);
        ASSERT_FALSE(ctx.chosen_impls().empty());
        int winograd = 0;
        // The conv2s that built the engine's own Winograd forward, and those that run oneDNN's
        // convolution primitive forward (a conv2 whose Winograd staging did not fit is rebuilt
        // with the direct kernels: it is in both).
        std::set<std::string> own_conv2, primitive_conv2;
        const std::string products = ", Winograd's products", forward = " forward";
        for (const auto& c : ctx.chosen_impls()) {
            EXPECT_EQ(c.impl.find("ref"), std::string::npos) << c.what << ": " << c.impl;
            winograd += c.impl.find("wino") != std::string::npos;
            const size_t at = c.what.find(products);
            const std::string name = c.what.substr(0, at);
            if (at != std::string::npos && name.size() > 6 && name.compare(name.size() - 6, 6, ".conv2") == 0)
                own_conv2.insert(name);
            if (c.what.size() > forward.size() && c.what.compare(c.what.size() - forward.size(), forward.size(), forward) == 0 &&
                c.what.find(".conv2 ") != std::string::npos)
                primitive_conv2.insert(c.what.substr(0, c.what.size() - forward.size()));
        }
        int own_winograd = 0;
        for (const std::string& name : own_conv2) own_winograd += primitive_conv2.count(name) == 0;
        // fp32 training runs every conv2 (58 dense layers, three passes each) with Winograd, and
        // inference (a chunk of images at a time) those of blocks 1 and 2 (6 + 12 at 56x56 and
        // 28x28): the staging fits the plan's buffer. oneDNN has Winograd only with AVX-512;
        // without it the engine runs its own on the same layers (winograd_matmul).
        const bool avx512 = cpu_has_avx512();
        const int layers = pass == Pass::training ? 58 : 6 + 12;
        EXPECT_EQ(winograd, avx512 ? (pass == Pass::training ? 3 * layers : layers) : 0);
        EXPECT_EQ(own_winograd, avx512 ? 0 : layers);
    }
}

// In bf16 precision every convolution and pooling must run oneDNN's native bf16 kernels: AVX512-BF16
// (jit_bf16, brgconv), or AMX where the CPU has it (avx512_core_amx_bf16): an emulated or reference
// bf16 kernel would be slower than fp32. The classifier's matmul stays f32 (1024x10 per image:
// nothing to gain).
TEST(Plan, Bf16RunsTheBf16KernelsOnTheHotPath) {
    if (!cpu_has_bf16()) GTEST_SKIP() << "this CPU has no AVX512-BF16";
    DnnlContext ctx;
    Parameters params(densenet_preset("densenet121", 10));
    DenseNet net(ctx, params, {32, 224, 224}, Pass::training, Intermediates::recompute, Precision::bf16);
    int bf16_kernels = 0;
    for (const auto& c : ctx.chosen_impls()) {
        EXPECT_EQ(c.impl.find("ref"), std::string::npos) << c.what << ": " << c.impl;
        const bool is_conv = c.what.find("conv") != std::string::npos;
        const bool is_bf16 = c.impl.find("avx512_core_bf16") != std::string::npos ||
                             c.impl.find("avx512_core_amx_bf16") != std::string::npos;
        if (is_conv) {
            EXPECT_TRUE(is_bf16) << c.what << ": " << c.impl;
        }
        bf16_kernels += is_bf16;
    }
    // 120 convolutions with three passes each, and the stem's max pooling both ways (the
    // transitions' average pools run inside our norm+relu kernels).
    EXPECT_EQ(bf16_kernels, 120 * 3 + 1 * 2);
}

TEST(Plan, RecomputingNeedsFarLessMemoryThanKeeping) {
    Parameters params(densenet_preset("densenet121", 10));
    EXPECT_EQ(params.count(), 6964106);
    const RunShape shape{32, 224, 224};
    auto keep = plan_activations(params.config(), shape, Intermediates::keep, Pass::training);
    auto recompute = plan_activations(params.config(), shape, Intermediates::recompute, Pass::training);
    auto infer = plan_activations(params.config(), shape, Intermediates::recompute, Pass::inference);
    std::printf("densenet121 224x224 batch 32 activation arena: keep %.1f MB, recompute %.1f MB, inference %.1f MB\n",
                keep.memory.total_bytes() / 1e6, recompute.memory.total_bytes() / 1e6, infer.memory.total_bytes() / 1e6);
    // The estimate: block buffers with their gradients about 0.6 GB, the kept
    // intermediates about 2.8 GB more, recomputing only a few hundred MB of scratch (plus, here,
    // the 552 MB of bottlenecks, kept in either mode, partly in the bytes of the earlier blocks'
    // gradients).
    EXPECT_LT(recompute.memory.total_bytes(), size_t(1.2e9));
    EXPECT_GT(keep.memory.total_bytes(), recompute.memory.total_bytes() * 5 / 2);
    EXPECT_LT(infer.memory.total_bytes(), recompute.memory.total_bytes());
}

// Every bottleneck (conv1's output) is kept in training, in its own region, in either mode;
// recomputing, backward recomputes the BN-ReLU outputs in its block's backward scratch; keeping,
// each layer's have their own regions too, which backward reads.
TEST(Plan, TrainingKeepsEveryBottleneckAndRecomputesOnlyTheNorms) {
    const DenseNetConfig cfg = densenet_preset("densenet121", 10);
    for (Intermediates im : {Intermediates::recompute, Intermediates::keep})
        for (Precision precision : {Precision::fp32, Precision::bf16}) {
            const ActivationPlan plan = plan_activations(cfg, {32, 224, 224}, im, Pass::training, precision);
            std::set<size_t> bottlenecks;
            for (const BlockPlan& b : plan.blocks)
                for (const LayerPlan& l : b.layers) {
                    EXPECT_EQ(l.backward.bottleneck, l.forward.bottleneck);
                    bottlenecks.insert(l.forward.bottleneck);
                    if (im == Intermediates::keep) {
                        EXPECT_EQ(l.backward.activated_input, l.forward.activated_input);
                        EXPECT_EQ(l.backward.activated_bottleneck, l.forward.activated_bottleneck);
                    }
                }
            // All are alive from their block's forward to its backward, and blocks nest, so no two
            // share an offset.
            EXPECT_EQ(bottlenecks.size(), 58u);
            auto regions_ending = [&](const std::string& suffix) {
                int n = 0;
                for (const auto& r : plan.memory.regions())
                    n += r.name.size() > suffix.size() && r.name.compare(r.name.size() - suffix.size(), suffix.size(), suffix) == 0;
                return n;
            };
            const bool keep = im == Intermediates::keep;
            EXPECT_EQ(regions_ending(".backward_scratch.activated_input"), keep ? 0 : 4);
            EXPECT_EQ(regions_ending(".backward_scratch.activated_bottleneck"), keep ? 0 : 4);
            EXPECT_EQ(regions_ending(".backward_scratch.pooled_input"), keep ? 0 : 3);
            EXPECT_EQ(regions_ending(".activated_input"), keep ? 58 : 8);  // with forward's 4
        }
}

// Regions share bytes only where their lifetimes are disjoint: a block's gradient takes the bytes
// of the later blocks' kept bottlenecks (StepTimeline in activation_plan.cpp). The parity tests
// check that the engine's order of work agrees with those lifetimes.
TEST(Plan, RegionsAliveAtOnceNeverShareBytes) {
    const DenseNetConfig cfg = densenet_preset("densenet121", 10);
    for (Intermediates im : {Intermediates::recompute, Intermediates::keep})
        for (Precision precision : {Precision::fp32, Precision::bf16}) {
            const ActivationPlan plan = plan_activations(cfg, {32, 224, 224}, im, Pass::training, precision);
            const auto& regions = plan.memory.regions();
            size_t padded_sum = 0;
            const MemoryPlan::Region* block1_grad = nullptr;
            for (const auto& r : regions)
                if (r.name == "block1.grad") block1_grad = &r;
            ASSERT_NE(block1_grad, nullptr);
            const size_t grad_begin = block1_grad->offset, grad_end = grad_begin + block1_grad->bytes;
            std::vector<std::pair<size_t, size_t>> over_block1_grad;  // [begin, end) of others in its bytes
            for (size_t i = 0; i < regions.size(); ++i) {
                const MemoryPlan::Region& a = regions[i];
                padded_sum += (a.bytes + 63) / 64 * 64;
                EXPECT_LE(a.offset + a.bytes, plan.memory.total_bytes()) << a.name;
                for (size_t j = i + 1; j < regions.size(); ++j) {
                    const MemoryPlan::Region& b = regions[j];
                    const bool share_bytes = a.offset < b.offset + b.bytes && b.offset < a.offset + a.bytes;
                    if (share_bytes && a.bytes > 0 && b.bytes > 0) {
                        EXPECT_FALSE(a.lifetime.overlaps(b.lifetime)) << a.name << " and " << b.name;
                    }
                }
                const size_t begin = std::max(a.offset, grad_begin), end = std::min(a.offset + a.bytes, grad_end);
                if (&a != block1_grad && begin < end) over_block1_grad.emplace_back(begin, end);
            }
            // Block 1's gradient (103 MB in fp32) lies wholly over buffers dead by then: later
            // blocks' kept ones and forward's scratch.
            std::sort(over_block1_grad.begin(), over_block1_grad.end());
            size_t covered_to = grad_begin;
            for (const auto& [begin, end] : over_block1_grad)
                if (begin <= covered_to) covered_to = std::max(covered_to, end);
            EXPECT_EQ(covered_to, grad_end);
            EXPECT_LT(plan.memory.total_bytes() + block1_grad->bytes, padded_sum);
            // And the arena is hardly larger than what is alive at once at the step's fullest
            // moment (the parts of a training step are numbered 0 to 4 * blocks + 1).
            size_t fullest = 0;
            for (int part = 0; part <= 4 * int(plan.blocks.size()) + 1; ++part) {
                size_t alive = 0;
                for (const auto& r : regions)
                    if (r.lifetime.overlaps({part, part})) alive += (r.bytes + 63) / 64 * 64;
                fullest = std::max(fullest, alive);
            }
            EXPECT_LE(plan.memory.total_bytes(), fullest * 21 / 20);
            std::printf("%s %s: arena %.1f MB, %.1f MB alive at the fullest part\n",
                        im == Intermediates::keep ? "keep" : "recompute", precision == Precision::fp32 ? "fp32" : "bf16",
                        plan.memory.total_bytes() / 1e6, fullest / 1e6);
        }
}

// bf16 operands take half the room of the f32 ones they replace; nothing else grows.
TEST(Plan, Bf16NeedsLessMemoryThanFp32) {
    const DenseNetConfig cfg = densenet_preset("densenet121", 10);
    const RunShape shape{32, 224, 224};
    for (Intermediates im : {Intermediates::recompute, Intermediates::keep})
        for (Pass pass : {Pass::training, Pass::inference}) {
            auto fp32 = plan_activations(cfg, shape, im, pass, Precision::fp32);
            auto bf16 = plan_activations(cfg, shape, im, pass, Precision::bf16);
            EXPECT_LT(bf16.memory.total_bytes(), fp32.memory.total_bytes());
            if (pass == Pass::training && im == Intermediates::recompute)
                std::printf("densenet121 224x224 batch 32 training arena: fp32 %.1f MB, bf16 %.1f MB\n",
                            fp32.memory.total_bytes() / 1e6, bf16.memory.total_bytes() / 1e6);
        }
}

// Recomputing runs the same kernels on the same data in the same order, so the switch changes
// memory, never results.
void expect_keep_and_recompute_identical(Precision precision) {
    DenseNetConfig cfg;
    cfg.arch = "custom";
    cfg.growth_rate = 12, cfg.block_config = {3, 3}, cfg.num_init_features = 16, cfg.num_classes = 10;
    std::vector<float> x(4 * 3 * 40 * 40);
    for (size_t i = 0; i < x.size(); ++i) x[i] = float((i * 7919) % 1000) / 1000.0f;
    std::vector<int32_t> y{0, 3, 5, 9};
    std::vector<std::vector<float>> grads;
    for (Intermediates mode : {Intermediates::keep, Intermediates::recompute}) {
        DnnlContext ctx;
        Parameters params(cfg);
        init_parameters(params, 3);
        DenseNet net(ctx, params, {4, 40, 40}, Pass::training, mode, precision);
        net.forward(x.data(), y.data(), Mode::train);
        net.backward();
        grads.emplace_back(params.grads(), params.grads() + params.count());
    }
    EXPECT_EQ(grads[0], grads[1]);
}

TEST(Plan, KeepingAndRecomputingGiveBitIdenticalGradients) { expect_keep_and_recompute_identical(Precision::fp32); }

TEST(Plan, KeepingAndRecomputingGiveBitIdenticalGradientsInBf16) {
    if (!cpu_has_bf16()) GTEST_SKIP() << "this CPU has no AVX512-BF16";
    expect_keep_and_recompute_identical(Precision::bf16);
}

TEST(Plan, InferenceChunksAreTheBatchOrPowersOfTwoWhoseArenaFits) {
    const DenseNetConfig cfg = densenet_preset("densenet121", 10);
    auto arena = [&](int64_t images) {
        return plan_activations(cfg, {images, 224, 224}, Intermediates::recompute, Pass::inference).memory.total_bytes();
    };
    auto chunk = [&](int64_t batch, size_t cache) { return inference_chunk(cfg, {batch, 224, 224}, Precision::fp32, cache); };
    EXPECT_EQ(chunk(32, arena(32)), 32);  // it all fits
    EXPECT_EQ(chunk(24, arena(24)), 24);
    EXPECT_EQ(chunk(32, arena(31)), 16);
    EXPECT_EQ(chunk(32, arena(5)), 4);
    EXPECT_EQ(chunk(32, arena(4)), 4);
    EXPECT_EQ(chunk(3, arena(2)), 2);
    EXPECT_EQ(chunk(32, arena(1) - 1), 1);  // one image at least
    EXPECT_EQ(executed_shape(cfg, {32, 224, 224}, Pass::training, Precision::fp32).batch, 32);  // training never
    EXPECT_GT(last_level_cache_bytes(), size_t(0));
}

// A batch larger than the cache holds runs in chunks, the last one padded: the same logits and
// loss as one run over the whole batch (a training network's, in eval mode).
TEST(Plan, ChunkedInferenceGivesTheWholeBatchsResults) {
    DenseNetConfig cfg;
    cfg.arch = "custom";
    cfg.growth_rate = 12, cfg.block_config = {3, 3}, cfg.num_init_features = 16, cfg.num_classes = 10;
    const int64_t S = 40;
    const size_t one = plan_activations(cfg, {1, S, S}, Intermediates::recompute, Pass::inference).memory.total_bytes();
    const int64_t N = 2 * int64_t(last_level_cache_bytes() / one) + 3;  // odd: the chunks don't divide it
    Parameters params(cfg);
    init_parameters(params, 3);
    std::vector<float> x = test::random_vector(size_t(N * 3 * S * S), 5);
    std::vector<int32_t> y(static_cast<size_t>(N));
    for (int64_t i = 0; i < N; ++i) y[size_t(i)] = int32_t((i * 7) % 10);
    DnnlContext ctx;
    DenseNet whole(ctx, params, {N, S, S}, Pass::training, Intermediates::recompute);
    DenseNet chunked(ctx, params, {N, S, S}, Pass::inference, Intermediates::recompute);
    ASSERT_LT(chunked.plan().shape.batch, N);
    EXPECT_EQ(chunked.shape().batch, N);
    const float want = whole.forward(x.data(), y.data(), Mode::eval);
    const float got = chunked.forward(x.data(), y.data(), Mode::eval);
    EXPECT_NEAR(got, want, 1e-5 * std::abs(want));
    EXPECT_LE(test::relative_error(chunked.logits(), whole.logits(), N * 10), 1e-5);
    EXPECT_LE(test::relative_error(chunked.log_probs(), whole.log_probs(), N * 10), 1e-5);
    std::printf("%ld images in chunks of %ld: loss %.7f against %.7f\n", long(N), long(chunked.plan().shape.batch), got,
                want);
}

// An inference network runs its 28x28 conv2s with Winograd; the same parameters in a training
// network at batch 1 (784 output pixels, under its 1,024) run the direct kernels, whose eval
// forward the parity tests hold to PyTorch. The two give the same logits.
TEST(Plan, WinogradInferenceGivesTheDirectNetworksResults) {
    if (!cpu_has_avx512()) GTEST_SKIP() << "oneDNN has Winograd convolutions only on CPUs with AVX-512";
    DenseNetConfig cfg;
    cfg.arch = "custom";
    cfg.growth_rate = 32, cfg.block_config = {2, 2}, cfg.num_init_features = 64, cfg.num_classes = 10;
    cfg.stem = Stem::small_inputs;
    const int64_t S = 28;
    Parameters params(cfg);
    init_parameters(params, 4);
    std::vector<float> x = test::random_vector(size_t(3 * S * S), 6);
    std::vector<int32_t> y{3};
    DnnlContext direct_ctx, winograd_ctx;
    DenseNet direct(direct_ctx, params, {1, S, S}, Pass::training, Intermediates::recompute);
    DenseNet winograd(winograd_ctx, params, {1, S, S}, Pass::inference, Intermediates::recompute);
    auto winograd_convolutions = [](const DnnlContext& ctx) {
        int n = 0;
        for (const auto& c : ctx.chosen_impls()) n += c.impl.find("wino") != std::string::npos;
        return n;
    };
    EXPECT_EQ(winograd_convolutions(direct_ctx), 0);
    EXPECT_EQ(winograd_convolutions(winograd_ctx), 2);  // block 1's two conv2s; block 2 is 14x14
    const float want = direct.forward(x.data(), y.data(), Mode::eval);
    const float got = winograd.forward(x.data(), y.data(), Mode::eval);
    EXPECT_NEAR(got, want, 1e-5 * std::abs(want));
    EXPECT_LE(test::relative_error(winograd.logits(), direct.logits(), 10), 1e-5);
}

TEST(Plan, RejectsInputsTooSmallAndEmptyBatches) {
    DenseNetConfig cfg = densenet_preset("densenet121", 10);
    EXPECT_EQ(min_input_size(cfg), 29);
    EXPECT_THROW(plan_activations(cfg, {4, 28, 28}, Intermediates::recompute, Pass::training), std::invalid_argument);
    EXPECT_NO_THROW(plan_activations(cfg, {4, 29, 29}, Intermediates::recompute, Pass::training));
    EXPECT_THROW(plan_activations(cfg, {0, 32, 32}, Intermediates::recompute, Pass::training), std::invalid_argument);
    EXPECT_THROW(densenet_preset("densenet122", 10), std::invalid_argument);
}

TEST(Plan, ParameterCountsMatchTorchvision) {
    EXPECT_EQ(Parameters(densenet_preset("densenet121", 1000)).count(), 7978856);
    EXPECT_EQ(Parameters(densenet_preset("densenet161", 1000)).count(), 28681000);
    EXPECT_EQ(Parameters(densenet_preset("densenet169", 1000)).count(), 14149480);
    EXPECT_EQ(Parameters(densenet_preset("densenet201", 1000)).count(), 20013928);
    // DenseNet-BC, L=100, k=12 for CIFAR-10: 3 blocks of 16 bottleneck layers, about 0.8M.
    DenseNetConfig bc;
    bc.growth_rate = 12, bc.block_config = {16, 16, 16}, bc.num_init_features = 24, bc.num_classes = 10;
    bc.stem = Stem::small_inputs;
    EXPECT_NEAR(double(Parameters(bc).count()), 0.8e6, 0.05e6);
}

}  // namespace
}  // namespace dn
