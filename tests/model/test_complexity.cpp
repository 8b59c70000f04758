// The complexity report against PyTorch's own account (make_complexity_reference.py) and against
// what the engine really allocates.
#include "model/complexity.h"
#include "model/densenet.h"
#include "model/torch_repr.h"
#include "model/reference_case.h"
#include "test_util.h"

#include <dlfcn.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <sstream>
#include <vector>

// Arena takes its memory from aligned_alloc and nothing else in the engine does (oneDNN uses
// posix_memalign), so recording aligned_alloc's requests shows the arena's real allocation.
namespace {
std::mutex record_mutex;
std::vector<size_t> aligned_requests;
}  // namespace

extern "C" void* aligned_alloc(size_t alignment, size_t size) noexcept {
    using Real = void* (*)(size_t, size_t);
    static Real real = reinterpret_cast<Real>(dlsym(RTLD_NEXT, "aligned_alloc"));
    {
        std::lock_guard<std::mutex> lock(record_mutex);
        aligned_requests.push_back(size);
    }
    return real(alignment, size);
}

namespace dn {
namespace {

nlohmann::json reference(const std::string& name) {
    const std::string path = test::reference_dir() + "/complexity/" + name + ".json";
    std::ifstream in(path);
    if (!in) throw std::runtime_error("missing fixture " + path + ": run make_complexity_reference.py (ctest does)");
    return nlohmann::json::parse(in);
}

RunShape shape_of(const nlohmann::json& c) { return {c["batch"], c["size"], c["size"]}; }

class Reference : public ::testing::TestWithParam<const char*> {};

TEST_P(Reference, ModulesMatchTorchvisionsForwardHooks) {
    const auto ref = reference(GetParam());
    const DenseNetConfig cfg = test::config_of(ref["case"]);
    const RunShape s = shape_of(ref["case"]);
    std::vector<Layer> modules;
    for (const Layer& l : describe_layers(cfg, s.batch, s.height, s.width))
        if (l.module) modules.push_back(l);
    ASSERT_EQ(modules.size(), ref["modules"].size());
    for (size_t i = 0; i < modules.size(); ++i) {
        const Layer& l = modules[i];
        const auto& r = ref["modules"][i];
        ASSERT_EQ(l.name, r["name"]);
        EXPECT_EQ(layer_kind_name(l.kind), r["kind"]) << l.name;
        const auto shape = r["output"].get<std::vector<int64_t>>();
        const std::vector<int64_t> ours(l.output.begin(), l.output.begin() + int64_t(shape.size()));
        EXPECT_EQ(ours, shape) << l.name;
        EXPECT_EQ(l.parameters, r["parameters"]) << l.name;
        EXPECT_EQ(l.macs, r["macs"]) << l.name;
    }
    const auto all = describe_layers(cfg, s.batch, s.height, s.width);
    EXPECT_EQ(total_macs(all), ref["macs"]);
    EXPECT_EQ(total_parameters(all), ref["parameters"]);
    EXPECT_EQ(Parameters(cfg).count(), ref["parameters"]);
}

TEST_P(Reference, PrintsAsTorchPrintsTheModule) {
    const auto ref = reference(GetParam());
    EXPECT_EQ(torch_repr(test::config_of(ref["case"])), ref["repr"].get<std::string>());
}

TEST_P(Reference, ModelBytesAsTheStateDictStoresThem) {
    const auto ref = reference(GetParam());
    const ModelBytes m = model_bytes(test::config_of(ref["case"]));
    EXPECT_EQ(m.parameters, ref["parameters"]);
    EXPECT_EQ(m.fp32(), ref["model_bytes_fp32"]);
    EXPECT_EQ(m.bf16(), ref["model_bytes_bf16"]);
}

TEST_P(Reference, PyTorchActivationFiguresAsPyTorchCountsThem) {
    const auto ref = reference(GetParam());
    const DenseNetConfig cfg = test::config_of(ref["case"]);
    const RunShape s = shape_of(ref["case"]);
    EXPECT_EQ(naive_forward_bytes(cfg, s), ref["naive_bytes"]);
    EXPECT_EQ(autograd_saved_bytes(cfg, s), ref["saved_bytes"]);
}

INSTANTIATE_TEST_SUITE_P(Complexity, Reference,
                         ::testing::Values("densenet121", "densenet169_64", "custom_small", "densenet121_grey"));

TEST(Complexity, Densenet121At224Is2834161664Macs) {
    const DenseNetConfig cfg = densenet_preset("densenet121", 1000);
    EXPECT_EQ(total_macs(describe_layers(cfg, 1, 224, 224)), 2834161664);
    EXPECT_EQ(total_macs(describe_layers(cfg, 32, 224, 224)), 32 * int64_t(2834161664));
    ComplexityOptions o;
    o.batch = 32, o.memory_gib = 16, o.with_scratchpad = false;
    const Complexity c = analyse_complexity(cfg, o);
    const auto j = complexity_json(c);
    EXPECT_EQ(j["macs"], 2834161664);
    EXPECT_EQ(j["flops"], 2 * int64_t(2834161664));
    EXPECT_EQ(j["parameters"], 7978856);
}

DenseNetConfig small_config() {
    DenseNetConfig cfg;
    cfg.arch = "custom";
    cfg.growth_rate = 12, cfg.block_config = {2, 3, 2}, cfg.num_init_features = 24, cfg.num_classes = 10;
    cfg.in_channels = 1, cfg.stem = Stem::small_inputs;
    return cfg;
}

// The report's arena figures are the DenseNet's own plan, and the arena it really allocates, in
// fp32 and in bf16 mixed precision.
TEST(Complexity, ActivationBytesAreWhatTheEngineAllocates) {
    struct Case {
        DenseNetConfig cfg;
        int64_t batch, size;
        Precision precision;
    };
    std::vector<Case> cases;
    for (Precision precision : {Precision::fp32, Precision::bf16}) {
        if (precision == Precision::bf16 && !cpu_has_bf16()) continue;
        cases.push_back({densenet_preset("densenet121", 10), 2, 64, precision});
        cases.push_back({small_config(), 3, 16, precision});
    }
    for (const Case& k : cases) {
        const Precision precision = k.precision;
        ComplexityOptions o;
        o.batch = k.batch, o.input_size = k.size, o.memory_gib = 1, o.precision = precision;
        const Complexity c = analyse_complexity(k.cfg, o);
        struct Mode {
            Pass pass;
            Intermediates intermediates;
            const EngineMemory& reported;
        };
        for (const Mode& m : {Mode{Pass::training, Intermediates::recompute, c.training_recompute},
                              Mode{Pass::training, Intermediates::keep, c.training_keep},
                              Mode{Pass::inference, Intermediates::recompute, c.inference}}) {
            DnnlContext ctx;
            Parameters params(k.cfg);
            {
                std::lock_guard<std::mutex> lock(record_mutex);
                aligned_requests.clear();
            }
            DenseNet net(ctx, params, {k.batch, k.size, k.size}, m.pass, m.intermediates, precision);
            std::vector<size_t> requests;
            {
                std::lock_guard<std::mutex> lock(record_mutex);
                requests = aligned_requests;
            }
            EXPECT_EQ(m.reported.activations, net.plan().memory.total_bytes());
            EXPECT_NE(std::find(requests.begin(), requests.end(), m.reported.activations), requests.end())
                << "no aligned_alloc of " << m.reported.activations << " bytes";
            EXPECT_EQ(m.reported.scratchpad, ctx.scratchpad_bytes());
            EXPECT_EQ(m.reported.state, size_t(engine_state_bytes(model_bytes(k.cfg), m.pass)));
        }
    }
}

TEST(Complexity, StateIsParametersGradientsBuffersAndAdam) {
    const ModelBytes m = model_bytes(densenet_preset("densenet121", 1000));
    EXPECT_EQ(m.parameters, 7978856);
    EXPECT_EQ(m.batch_counts, 1 + 2 * 58 + 3 + 1);  // norm0, two per dense layer, transitions, norm5
    EXPECT_EQ(engine_state_bytes(m, Pass::inference), 8 * m.parameters + 4 * m.running_stats + 8 * m.batch_counts);
    EXPECT_EQ(engine_state_bytes(m, Pass::training), engine_state_bytes(m, Pass::inference) + 8 * m.parameters);
}

// max_batch: the plan at it fits, at one more image it does not.
TEST(Complexity, MaxBatchIsTheEdge) {
    struct Case {
        DenseNetConfig cfg;
        int64_t size;
        size_t budget;
        bool scratchpad;
    };
    const size_t GiB = size_t(1) << 30;
    for (const Case& k : {Case{densenet_preset("densenet121", 1000), 224, 2 * GiB, false},
                          Case{densenet_preset("densenet121", 10), 32, GiB / 4, false},
                          Case{small_config(), 16, 64 << 20, true}}) {
        for (Pass pass : {Pass::training, Pass::inference})
            for (Intermediates im : {Intermediates::recompute, Intermediates::keep}) {
                const int64_t b = max_batch(k.cfg, k.size, pass, im, k.budget, k.scratchpad);
                ASSERT_GT(b, 0);
                EXPECT_LE(engine_memory(k.cfg, {b, k.size, k.size}, pass, im, k.scratchpad).total(), k.budget);
                EXPECT_GT(engine_memory(k.cfg, {b + 1, k.size, k.size}, pass, im, k.scratchpad).total(), k.budget);
            }
    }
    EXPECT_EQ(max_batch(densenet_preset("densenet121", 1000), 224, Pass::training, Intermediates::recompute, 1 << 20,
                        false),
              0);
}

TEST(Complexity, RejectsBadInput) {
    const DenseNetConfig cfg = densenet_preset("densenet121", 10);
    ComplexityOptions o;
    o.batch = 0;
    EXPECT_THROW(analyse_complexity(cfg, o), std::invalid_argument);
    o.batch = 1, o.input_size = 28;
    try {
        analyse_complexity(cfg, o);
        FAIL() << "28x28 accepted";
    } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find("at least 29x29"), std::string::npos) << e.what();
    }
    EXPECT_THROW(densenet_preset("densenet122", 10), std::invalid_argument);
}

}  // namespace
}  // namespace dn
