// The ONNX export against this engine's own eval logits, read by OpenCV's DNN module here and by
// ONNX Runtime and onnx's checker in check_onnx_export.py (which reads the cases this writes).
#include "interop/onnx_export.h"
#include "model/densenet.h"
#include "model/init.h"
#include "test_util.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <opencv2/dnn.hpp>

#include <filesystem>
#include <fstream>
#include <random>

namespace dn {
namespace {

namespace fs = std::filesystem;

struct ExportCase {
    std::string name;
    DenseNetConfig config;
    int64_t size;
};

DenseNetConfig small_stem(int64_t in_channels) {
    DenseNetConfig cfg;
    cfg.arch = "custom";
    cfg.growth_rate = 12, cfg.block_config = {3, 3, 3}, cfg.num_init_features = 24, cfg.num_classes = 10;
    cfg.stem = Stem::small_inputs, cfg.in_channels = in_channels;
    return cfg;
}

std::vector<ExportCase> cases() {
    return {{"densenet121", densenet_preset("densenet121", 1000), 224},
            {"small_stem_rgb", small_stem(3), 32},
            {"small_stem_grey", small_stem(1), 28}};
}

// Running statistics and BN affine parameters away from their initial 0/1, so that eval-mode
// batch norm is really exercised.
void perturb_batch_norm(Parameters& params, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<float> u(0.5f, 1.5f), n(-0.2f, 0.2f);
    for (const auto& e : params.entries()) {
        if (e.role == TensorRole::batch_count) continue;
        float* v = static_cast<float*>(params.data(e));
        const bool variance_like = e.name.ends_with("running_var") || (e.name.find("norm") != std::string::npos &&
                                                                       e.name.ends_with(".weight"));
        const bool shift_like = e.name.ends_with("running_mean") || (e.name.find("norm") != std::string::npos &&
                                                                     e.name.ends_with(".bias"));
        if (variance_like || shift_like)
            for (int64_t i = 0; i < e.numel(); ++i) v[i] = variance_like ? u(rng) : n(rng);
    }
}

std::vector<float> engine_logits(Parameters& params, const std::vector<float>& x, int64_t batch, int64_t size) {
    DnnlContext ctx;
    DenseNet net(ctx, params, {batch, size, size}, Pass::inference, Intermediates::recompute);
    net.load_weights();
    std::vector<int32_t> labels(size_t(batch), 0);
    net.forward(x.data(), labels.data(), Mode::eval);
    return std::vector<float>(net.logits(), net.logits() + batch * params.config().num_classes);
}

void write_floats(const fs::path& path, const std::vector<float>& v) {
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(v.data()), std::streamsize(v.size() * 4));
}

TEST(OnnxExport, OpenCvDnnAgreesWithTheEngine) {
    const fs::path dir = fs::path(test::reference_dir()).parent_path() / "onnx_export";
    fs::create_directories(dir);
    nlohmann::json manifest = nlohmann::json::array();
    for (const ExportCase& c : cases()) {
        Parameters params(c.config);
        init_parameters(params, 7);
        perturb_batch_norm(params, 8);
        OnnxExport what{.info = {}, .input_size = c.size, .normalization = {}};
        what.info.config = c.config;
        for (int64_t k = 0; k < c.config.num_classes; ++k) what.info.class_names.push_back("class " + std::to_string(k));
        const fs::path model = dir / (c.name + ".onnx");
        export_onnx(params, what, model.string());
        cv::dnn::Net opencv = cv::dnn::readNetFromONNX(model.string());
        for (int64_t batch : {int64_t(1), int64_t(8)}) {
            const std::vector<float> x =
                test::random_vector(size_t(batch * c.config.in_channels * c.size * c.size), uint32_t(batch), 0.f, 1.f);
            const std::vector<float> ours = engine_logits(params, x, batch, c.size);
            const int dims[4] = {int(batch), int(c.config.in_channels), int(c.size), int(c.size)};
            cv::Mat blob(4, dims, CV_32F, const_cast<float*>(x.data()));
            opencv.setInput(blob, "input");
            const cv::Mat out = opencv.forward();
            ASSERT_EQ(int64_t(out.total()), int64_t(ours.size())) << c.name;
            const double error = test::relative_error(out.ptr<float>(), ours.data(), int64_t(ours.size()));
            EXPECT_LT(error, 1e-4) << c.name << " batch " << batch << ": OpenCV DNN against the engine";
            std::printf("%s batch %ld: OpenCV DNN vs engine, relative error %.2e\n", c.name.c_str(), long(batch), error);
            const std::string stem = c.name + "_b" + std::to_string(batch);
            write_floats(dir / (stem + ".input.bin"), x);
            write_floats(dir / (stem + ".logits.bin"), ours);
            manifest.push_back({{"model", c.name + ".onnx"}, {"input", stem + ".input.bin"}, {"logits", stem + ".logits.bin"},
                                {"shape", {batch, c.config.in_channels, c.size, c.size}},
                                {"classes", c.config.num_classes}});
        }
    }
    std::ofstream(dir / "cases.json") << manifest.dump(1);
}

TEST(OnnxExport, TheFileIsWrittenWhole) {
    const fs::path dir = fs::path(test::reference_dir()).parent_path() / "onnx_export_atomic";
    fs::create_directories(dir);
    Parameters params(small_stem(3));
    init_parameters(params, 1);
    OnnxExport what;
    what.info.config = params.config();
    EXPECT_THROW(export_onnx(params, what, (dir / "missing_folder" / "m.onnx").string()), std::runtime_error);
    EXPECT_FALSE(fs::exists(dir / "missing_folder"));
    for (const auto& entry : fs::directory_iterator(dir)) ADD_FAILURE() << "left behind: " << entry.path();
}

}  // namespace
}  // namespace dn
