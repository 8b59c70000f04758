// densenet predict: the top classes of PNG or JPEG images, through the transforms of training.
#include "app/commands.h"
#include "app/device_choice.h"
#include "app/run_setup.h"

#include "data/image_file.h"
#include "data/transform.h"
#include "model/checkpoint.h"
#include "model/densenet.h"
#include "model/model_info.h"
#include "interop/torch_import.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <numeric>
#include <stdexcept>

namespace dn {

namespace {
struct PredictOptions {
    std::string checkpoint;
    std::vector<std::string> images;
    int64_t top = 5;
    int64_t input_size = 0;  // 0: the checkpoint's
    int64_t threads = 0;
    std::string device = "auto";
    bool json = false;
};

// One decoded image as a one-image set, so that it goes through exactly the training transform.
ImageSet as_set(DecodedImage image, int64_t channels) {
    DecodedImage converted = convert_channels(image, channels);
    ImageSet set;
    set.count = 1, set.channels = converted.channels, set.height = converted.height, set.width = converted.width;
    set.pixels = std::move(converted.pixels);
    set.labels = {0};
    return set;
}

int run_predict(const PredictOptions& o) {
    if (o.top <= 0) throw std::invalid_argument("--top must be at least 1");
    const DeviceChoice device = choose_device(o.device);
    set_compute_threads(o.threads);
    const SafetensorsFile file = open_checkpoint(o.checkpoint);
    const ModelInfo info = read_model_info(file);
    const DenseNetConfig& cfg = info.config;
    const int64_t size = model_input_size(o.input_size, info);
    std::vector<std::string> names = info.class_names;
    for (int64_t k = int64_t(names.size()); k < cfg.num_classes; ++k) names.push_back("class " + std::to_string(k));

    // Decode everything first: a bad file is reported before any work is done.
    std::vector<ImageSet> sets;
    for (const auto& path : o.images) sets.push_back(as_set(decode_image(path), cfg.in_channels));

    Parameters params(cfg);
    load_checkpoint(params, file, {});
    DnnlContext ctx;
    const std::unique_ptr<Classifier> net = inference_network(device, ctx, params, {1, size, size}, Precision::fp32);
    if (device.kind == DeviceKind::cuda) std::fprintf(stderr, "on %s\n", device.description.c_str());
    const Transform transform{size, cfg.in_channels, Augment{}, normalization(info.normalize, cfg.in_channels)};
    std::vector<float> x(size_t(cfg.in_channels * size * size));
    std::vector<uint8_t> scratch;
    std::mt19937_64 unused_rng(0);
    const int32_t label = 0;
    const int64_t top = std::min(o.top, cfg.num_classes);
    nlohmann::json results = nlohmann::json::array();
    for (size_t i = 0; i < sets.size(); ++i) {
        transform_image(x.data(), sets[i], 0, transform, unused_rng, scratch);
        net->forward(x.data(), &label, Mode::eval);
        const float* log_probs = net->log_probs();
        std::vector<int64_t> order(size_t(cfg.num_classes));
        std::iota(order.begin(), order.end(), 0);
        std::partial_sort(order.begin(), order.begin() + top, order.end(),
                          [&](int64_t a, int64_t b) { return log_probs[a] > log_probs[b]; });
        std::printf("%s\n", o.images[i].c_str());
        nlohmann::json ranked = nlohmann::json::array();
        for (int64_t r = 0; r < top; ++r) {
            const int64_t k = order[size_t(r)];
            const double p = std::exp(double(log_probs[k]));
            std::printf("  %d. %-20s %6.2f%%\n", int(r + 1), names[size_t(k)].c_str(), 100.0 * p);
            ranked.push_back({{"class", names[size_t(k)]}, {"index", k}, {"probability", p}});
        }
        results.push_back({{"image", o.images[i]}, {"top", ranked}});
    }
    if (o.json) std::printf("%s\n", results.dump().c_str());
    return 0;
}
}  // namespace

Command add_predict_command(CLI::App& app) {
    auto o = std::make_shared<PredictOptions>();
    auto* p = app.add_subcommand("predict", "the top classes, with probabilities, of PNG or JPEG images");
    p->add_option("--checkpoint", o->checkpoint, "safetensors checkpoint (its class names and input size are used), or a PyTorch .pth")
        ->required();
    p->add_option("images", o->images, "PNG or JPEG files")->required();
    p->add_option("--top", o->top, "classes to show per image")->capture_default_str();
    p->add_option("--input-size", o->input_size, "resize to this square (default: the checkpoint's, else 224)");
    p->add_option("--threads", o->threads, "compute threads (0: one per core)")->capture_default_str();
    p->add_option("--device", o->device, "auto (a GPU when one is visible, else the CPU), cpu, cuda or cuda:N")
        ->capture_default_str();
    p->add_flag("--json", o->json, "end with one JSON line: every image's ranked classes and probabilities");
    return {p, [o] { return run_predict(*o); }};
}

}  // namespace dn
