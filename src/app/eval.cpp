// densenet eval: a checkpoint's test loss, accuracy, per-class accuracy and confusion matrix.
#include "app/commands.h"
#include "app/device_choice.h"
#include "app/run_setup.h"

#include "data/batch_loader.h"
#include "data/datasets.h"
#include "model/checkpoint.h"
#include "model/densenet.h"
#include "model/model_info.h"
#include "interop/torch_import.h"
#include "train/evaluate.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <stdexcept>

namespace dn {

namespace {
struct EvalOptions {
    std::string checkpoint;
    std::string dataset;  // empty: the checkpoint's
    std::string data_dir;
    int64_t input_size = 0;  // 0: the checkpoint's
    int64_t batch_size = 32;
    int64_t limit = 0;
    std::string normalize;  // empty: the checkpoint's
    std::string precision = "fp32";
    int64_t threads = 0;
    std::string device = "auto";
    std::string tta = "none";
    bool json = false;
};

void print_report(const EvalResult& r, const std::vector<std::string>& names) {
    std::printf("test loss %.6f, accuracy %.3f%% (%ld images)\n\nper class:\n", r.loss, 100.0 * r.accuracy, long(r.images));
    size_t width = 9;
    for (const auto& n : names) width = std::max(width, n.size());
    for (int64_t k = 0; k < r.classes; ++k) {
        int64_t total = 0;
        for (int64_t p = 0; p < r.classes; ++p) total += r.count(k, p);
        std::printf("  %-*s %7.2f%%  (%ld of %ld)\n", int(width), names[size_t(k)].c_str(), 100.0 * r.class_accuracy(k),
                    long(r.count(k, k)), long(total));
    }
    std::printf("\nconfusion matrix (rows: true class, columns: predicted class):\n  %*s", int(width), "");
    for (int64_t p = 0; p < r.classes; ++p) std::printf(" %6.6s", names[size_t(p)].c_str());
    std::printf("\n");
    for (int64_t k = 0; k < r.classes; ++k) {
        std::printf("  %-*s", int(width), names[size_t(k)].c_str());
        for (int64_t p = 0; p < r.classes; ++p) std::printf(" %6ld", long(r.count(k, p)));
        std::printf("\n");
    }
}

nlohmann::json to_json(const EvalResult& r, const std::vector<std::string>& names) {
    nlohmann::json per_class = nlohmann::json::object(), confusion = nlohmann::json::array();
    for (int64_t k = 0; k < r.classes; ++k) {
        const double a = r.class_accuracy(k);
        per_class[names[size_t(k)]] = std::isnan(a) ? nlohmann::json(nullptr) : nlohmann::json(a);
        std::vector<int64_t> row;
        for (int64_t p = 0; p < r.classes; ++p) row.push_back(r.count(k, p));
        confusion.push_back(row);
    }
    return {{"loss", r.loss}, {"accuracy", r.accuracy}, {"images", r.images}, {"classes", names},
            {"per_class_accuracy", per_class}, {"confusion", confusion}};
}

int run_eval(const EvalOptions& o) {
    if (o.batch_size <= 0) throw std::invalid_argument("--batch-size must be at least 1");
    const DeviceChoice device = choose_device(o.device);
    const Precision precision = precision_on(device, parse_precision(o.precision));
    set_compute_threads(o.threads);
    const SafetensorsFile file = open_checkpoint(o.checkpoint);
    const ModelInfo info = read_model_info(file);
    const int64_t size = model_input_size(o.input_size, info);
    // The loader holds 3 batches of float images (1 thread); inference's memory counts the one it
    // reads. (On a GPU the network's memory is the device's: a batch too large for it is cudaMalloc's
    // one-line error when the network is built.)
    if (device.kind == DeviceKind::cpu)
        check_memory_fits(info.config, {o.batch_size, size, size}, Pass::inference, Intermediates::recompute, precision,
                          2 * sizeof(float) * size_t(info.config.in_channels * size * size));
    const std::string dataset = !o.dataset.empty() ? o.dataset : (!info.dataset.empty() ? info.dataset : "cifar10");
    const DatasetRequest request{.name = dataset, .dir = o.data_dir, .folder_size = size,
                                 .folder_channels = info.config.in_channels};
    const ImageSet test_set = load_dataset(request, Split::test);
    if (int64_t(test_set.class_names.size()) != info.config.num_classes)
        throw std::invalid_argument("'" + o.checkpoint + "' has " + std::to_string(info.config.num_classes) +
                                    " classes but " + dataset + " has " + std::to_string(test_set.class_names.size()));
    // The same count is not enough: a CIFAR-10 model tested on Fashion-MNIST would be nonsense.
    if (!info.class_names.empty() && info.class_names != test_set.class_names)
        throw std::invalid_argument("'" + o.checkpoint + "' was trained on other classes (" + info.class_names.front() +
                                    ", ...) than " + dataset + "'s (" + test_set.class_names.front() + ", ...)");

    Parameters params(info.config);
    load_checkpoint(params, file, {});
    DnnlContext ctx;
    const std::unique_ptr<Classifier> net = inference_network(device, ctx, params, {o.batch_size, size, size}, precision);
    const Transform transform{.size = size, .channels = info.config.in_channels, .augment = Augment{},
                              .normalization = normalization(o.normalize.empty() ? info.normalize : o.normalize,
                                                             info.config.in_channels)};
    BatchLoader loader(test_set, transform,
                       {.batch = o.batch_size, .order = Order::sequential, .last_batch = LastBatch::keep,
                        .limit = o.limit, .seed = 0, .threads = 1});
    const TestTimeAugment tta = test_time_augment(o.tta);
    std::printf("%s (%s, %ld classes) on %ld %s test images at %ldx%ld, %s, on %s%s\n", o.checkpoint.c_str(),
                info.config.arch.c_str(), long(info.config.num_classes), long(loader.images_per_epoch()), dataset.c_str(),
                long(size), long(size), precision_name(precision), device.description.c_str(),
                tta == TestTimeAugment::flip ? ", each image also mirrored (probabilities averaged)" : "");
    const EvalResult r = *evaluate(*net, loader, "  testing", nullptr, tta);
    print_report(r, test_set.class_names);
    if (o.json) {
        nlohmann::json j = to_json(r, test_set.class_names);
        j["precision"] = precision_name(precision);
        j["device"] = device.kind == DeviceKind::cuda ? "cuda:" + std::to_string(device.index) : "cpu";
        j["tta"] = o.tta;
        std::printf("%s\n", j.dump().c_str());
    }
    return 0;
}
}  // namespace

Command add_eval_command(CLI::App& app) {
    auto o = std::make_shared<EvalOptions>();
    auto* e = app.add_subcommand("eval", "test a checkpoint: loss, accuracy, per-class accuracy and confusion matrix");
    e->add_option("--checkpoint", o->checkpoint, "checkpoint: safetensors (densenet train's, or a torchvision state_dict), or a PyTorch .pth")
        ->required();
    e->add_option("--dataset", o->dataset,
                  "cifar10, fashion-mnist, mnist or folder (default: the checkpoint's, else cifar10)")
        ->check(CLI::IsMember(dataset_names()));
    e->add_option("--data-dir", o->data_dir, "the data set's folder (default as for train)");
    e->add_option("--input-size", o->input_size, "resize to this square (default: the checkpoint's, else 224)");
    e->add_option("--batch-size", o->batch_size, "images per forward pass")->capture_default_str();
    e->add_option("--limit", o->limit, "use only the first N test images (0: all)")->capture_default_str();
    e->add_option("--normalize", o->normalize, "none or imagenet (default: what the checkpoint was trained with)")
        ->check(CLI::IsMember({"none", "imagenet"}));
    e->add_option("--precision", o->precision,
                  "fp32, or bf16: the forward pass as train --precision bf16 tests (on the CPU: fp32 where it has no "
                  "AVX512-BF16)")
        ->capture_default_str();
    e->add_option("--threads", o->threads, "compute threads (0: one per core)")->capture_default_str();
    e->add_option("--device", o->device, "auto (a GPU when one is visible, else the CPU), cpu, cuda or cuda:N")
        ->capture_default_str();
    e->add_option("--tta", o->tta,
                  "test-time augmentation: none, or flip: classify each image and its mirror image and average the "
                  "two softmax probabilities")
        ->capture_default_str()
        ->check(CLI::IsMember({"none", "flip"}));
    e->add_flag("--json", o->json, "end with one JSON line: loss, accuracy (0..1), per-class accuracy, confusion");
    return {e, [o] { return run_eval(*o); }};
}

}  // namespace dn
