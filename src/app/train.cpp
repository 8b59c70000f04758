// densenet train: the lecture's training run (Adam, NLL of log_softmax, a test after every epoch),
// resumable, with checkpoints, metrics and pictures in its run folder.
#include "app/commands.h"
#include "app/run_setup.h"

#include "data/batch_loader.h"
#include "data/datasets.h"
#include "data/download.h"
#include "model/checkpoint.h"
#include "model/densenet.h"
#include "model/init.h"
#include "model/model_info.h"
#include "report/run_pictures.h"
#include "train/evaluate.h"
#include "train/optimizer.h"
#include "train/progress.h"
#include "train/run_state.h"
#include "train/trainer.h"

#include <atomic>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <stdexcept>

namespace dn {

namespace {
namespace fs = std::filesystem;

struct TrainOptions {
    std::string arch = "densenet121";
    std::string dataset = "cifar10";
    std::string data_dir;  // empty: the data set's default
    bool download = false;
    std::string init;      // checkpoint to start from
    std::string resume;    // run folder to continue
    std::string out = "runs/latest";
    bool overwrite = false;
    int64_t input_size = 224;
    int64_t batch_size = 32;
    std::string optimizer = "adam";
    double lr = 1e-4;
    double momentum = 0.9;
    double weight_decay = 0.0;
    int64_t epochs = 10;
    uint64_t seed = 0;
    bool no_shuffle = false;
    std::string augment = "none";
    std::string normalize = "none";
    int64_t limit_train = 0, limit_test = 0;  // 0: the whole set
    std::string memory = "recompute";
    std::string precision = "fp32";
    int64_t threads = 0, loader_threads = 1;
    int64_t max_steps = 0;
};

// What the run state keeps: everything that decides the result. threads, loader threads and
// max-steps may differ between a run and its resumption without changing the weights (one
// thread gives bit-identical results; see the resume test).
nlohmann::json to_json(const TrainOptions& o) {
    return {{"arch", o.arch},         {"dataset", o.dataset},     {"data_dir", o.data_dir},
            {"init", o.init},         {"input_size", o.input_size}, {"batch_size", o.batch_size},
            {"optimizer", o.optimizer}, {"lr", o.lr},             {"momentum", o.momentum},
            {"weight_decay", o.weight_decay}, {"epochs", o.epochs}, {"seed", o.seed},
            {"no_shuffle", o.no_shuffle}, {"augment", o.augment}, {"normalize", o.normalize},
            {"limit_train", o.limit_train}, {"limit_test", o.limit_test}, {"memory", o.memory},
            {"precision", o.precision}};
}

void from_json(const nlohmann::json& j, TrainOptions& o) {
    j.at("arch").get_to(o.arch), j.at("dataset").get_to(o.dataset), j.at("data_dir").get_to(o.data_dir);
    j.at("init").get_to(o.init), j.at("input_size").get_to(o.input_size), j.at("batch_size").get_to(o.batch_size);
    j.at("optimizer").get_to(o.optimizer), j.at("lr").get_to(o.lr), j.at("momentum").get_to(o.momentum);
    j.at("weight_decay").get_to(o.weight_decay), j.at("epochs").get_to(o.epochs), j.at("seed").get_to(o.seed);
    j.at("no_shuffle").get_to(o.no_shuffle), j.at("augment").get_to(o.augment), j.at("normalize").get_to(o.normalize);
    j.at("limit_train").get_to(o.limit_train), j.at("limit_test").get_to(o.limit_test), j.at("memory").get_to(o.memory);
    o.precision = j.value("precision", "fp32");  // runs from before bf16 existed are fp32
}

std::atomic<bool> g_interrupted{false};

extern "C" void on_interrupt(int) {
    // A second Ctrl-C ends the program at once; every file is written atomically, so even then
    // nothing is left half-written.
    if (g_interrupted.exchange(true)) std::_Exit(130);
}

std::unique_ptr<Optimizer> make_optimizer(const TrainOptions& o, int64_t count) {
    if (o.optimizer == "adam") {
        AdamOptions a;
        a.lr = o.lr, a.weight_decay = o.weight_decay;
        return std::make_unique<Adam>(count, a);
    }
    SgdOptions s;
    s.lr = o.lr, s.momentum = o.momentum, s.weight_decay = o.weight_decay;
    return std::make_unique<Sgd>(count, s);
}

// init.safetensors, last.*, best.*, state.json and the pictures; all writes are atomic.
class RunFolder {
public:
    RunFolder(std::string dir, const ModelInfo& info) : dir_(std::move(dir)), info_(info) {}
    std::string path(const std::string& name) const { return (fs::path(dir_) / name).string(); }

    // The optimizer's step count is written into the weights' metadata as well, so that a resume
    // can tell whether the weights, the optimizer state and state.json are from the same moment
    // (each file is atomic, but a kill can fall between two of them).
    void save_weights(const Parameters& params, const std::string& stem, int64_t epoch, int64_t steps) const {
        auto meta = model_metadata(info_);
        meta["epoch"] = std::to_string(epoch);
        meta["optimizer_steps"] = std::to_string(steps);
        save_checkpoint(params, path(stem + ".safetensors"), meta);
    }
    void save_training(const Parameters& params, const Optimizer& optimizer, const std::string& stem, int64_t epoch) const {
        save_weights(params, stem, epoch, optimizer.steps());
        optimizer.save(params, path(stem + ".optim.safetensors"));
    }

private:
    std::string dir_;
    ModelInfo info_;
};

int run_train(TrainOptions o, const CLI::App& cmd) {
    RunState state;
    if (!o.resume.empty()) {
        for (const char* flag : {"--arch", "--dataset", "--init", "--input-size", "--batch-size", "--optimizer", "--lr",
                                 "--momentum", "--weight-decay", "--seed", "--no-shuffle", "--augment", "--normalize",
                                 "--limit-train", "--limit-test", "--memory", "--precision", "--out", "--overwrite"})
            if (cmd.count(flag))
                throw std::invalid_argument(std::string("--resume continues a run with its own options; ") + flag +
                                            " cannot be changed (only --epochs, --data-dir, --threads, "
                                            "--loader-threads and --max-steps)");
        state = load_run_state((fs::path(o.resume) / "state.json").string());
        TrainOptions saved = o;
        from_json(state.options, saved);
        if (cmd.count("--epochs")) saved.epochs = o.epochs;
        if (cmd.count("--data-dir")) saved.data_dir = o.data_dir;
        saved.out = o.resume;
        o = saved;
        state.options = to_json(o);
    }
    if (o.batch_size <= 0) throw std::invalid_argument("--batch-size must be at least 1");
    if (o.epochs <= 0) throw std::invalid_argument("--epochs must be at least 1");
    if (!(o.lr > 0)) throw std::invalid_argument("--lr must be positive");
    const Precision precision = usable_precision(parse_precision(o.precision));
    set_compute_threads(o.threads);

    // The data first: a wrong folder should fail before anything is written.
    const std::string data_dir = o.data_dir.empty() ? default_data_dir(o.dataset) : o.data_dir;
    if (o.download) {
        if (o.dataset != "cifar10") throw std::invalid_argument("--download fetches CIFAR-10 only");
        download_cifar10(data_dir);
    }
    DatasetRequest request{o.dataset, data_dir, o.input_size, 3};
    const ImageSet train_set = load_dataset(request, Split::train);
    const ImageSet test_set = load_dataset(request, Split::test);

    DenseNetConfig cfg = densenet_preset(o.arch, int64_t(train_set.class_names.size()));
    check_input_size(cfg, o.input_size, train_set);
    const ModelInfo info{cfg, o.input_size, train_set.class_names, o.dataset, o.normalize};

    Parameters params(cfg), initial(cfg);
    init_parameters(params, o.seed);
    if (!o.init.empty()) start_from(params, o.init);
    std::unique_ptr<Optimizer> optimizer = make_optimizer(o, params.count());

    RunFolder run(o.out, info);
    if (o.resume.empty()) {
        prepare_run_folder(o.out, o.overwrite);
        state.options = to_json(o);
        run.save_weights(params, "init", 0, 0);
        load_checkpoint(initial, run.path("init.safetensors"));
        run.save_training(params, *optimizer, "last", 0);
        save_run_state(state, run.path("state.json"));
    } else {
        load_checkpoint(initial, run.path("init.safetensors"));
        const auto meta = load_checkpoint(params, run.path("last.safetensors"));
        optimizer->load(params, run.path("last.optim.safetensors"));
        const auto weights_steps = meta.find("optimizer_steps");
        if (optimizer->steps() != state.optimizer_steps || weights_steps == meta.end() ||
            weights_steps->second != std::to_string(state.optimizer_steps))
            throw std::runtime_error("'" + o.out + "' was stopped while saving: last.safetensors, last.optim.safetensors "
                                     "and state.json are from different steps; start a new run from its weights "
                                     "with --init " + run.path("last.safetensors"));
        if (state.epoch > o.epochs) {
            std::printf("%s has finished its %ld epochs; pass --epochs N to train further\n", o.out.c_str(), long(o.epochs));
            return 0;
        }
        std::printf("resuming %s at epoch %ld, batch %ld\n", o.out.c_str(), long(state.epoch), long(state.totals.next_batch));
    }

    Transform transform{o.input_size, cfg.in_channels, o.augment == "flip-crop" ? Augment::flip_crop : Augment::none,
                        normalization(o.normalize, cfg.in_channels)};
    Transform test_transform = transform;
    test_transform.augment = Augment::none;
    BatchLoader train_loader(train_set, transform,
                             {o.batch_size, o.no_shuffle ? Order::sequential : Order::shuffled, LastBatch::drop,
                              o.limit_train, o.seed, o.loader_threads});
    BatchLoader test_loader(test_set, test_transform,
                            {o.batch_size, Order::sequential, LastBatch::keep, o.limit_test, o.seed, o.loader_threads});

    DnnlContext ctx;
    DenseNet net(ctx, params, {o.batch_size, o.input_size, o.input_size}, Pass::training,
                 o.memory == "keep" ? Intermediates::keep : Intermediates::recompute, precision);
    net.load_weights();
    std::printf("training %s (%ld parameters, %ld classes) on %ld %s images at %ldx%ld, batch %ld, %s lr %g, %ld epochs, "
                "%s\nactivations: %.1f MB (%s); writing to %s\n",
                o.arch.c_str(), long(params.count()), long(cfg.num_classes), long(train_loader.images_per_epoch()),
                o.dataset.c_str(), long(o.input_size), long(o.input_size), long(o.batch_size), o.optimizer.c_str(), o.lr,
                long(o.epochs), precision_name(precision), double(net.plan().memory.total_bytes()) / 1e6,
                o.memory.c_str(), o.out.c_str());
    std::fflush(stdout);

    g_interrupted = false;
    std::signal(SIGINT, on_interrupt);
    std::signal(SIGTERM, on_interrupt);
    StopRequest stop{&g_interrupted, o.max_steps, 0};
    for (; state.epoch <= o.epochs; ++state.epoch) {
        const EpochEnd end = train_epoch(net, params, *optimizer, train_loader, state.epoch, o.epochs, state.totals, stop);
        if (end == EpochEnd::diverged) {
            std::fprintf(stderr, "error: the loss is no longer finite (epoch %ld, batch %ld); stopped. %s is the last good "
                                 "checkpoint; try a lower --lr\n",
                         long(state.epoch), long(state.totals.next_batch + 1), run.path("last.safetensors").c_str());
            return 1;
        }
        if (end == EpochEnd::stopped) {
            state.optimizer_steps = optimizer->steps();
            run.save_training(params, *optimizer, "last", state.epoch - 1);
            save_run_state(state, run.path("state.json"));
            std::printf("stopped in epoch %ld after batch %ld; continue with: densenet train --resume %s\n",
                        long(state.epoch), long(state.totals.next_batch), o.out.c_str());
            return g_interrupted ? 130 : 0;
        }
        const EvalResult test = evaluate(net, test_loader, "  testing");
        const EpochTotals& t = state.totals;
        const EpochRecord record{state.epoch, t.loss_sum / double(t.seen), double(t.correct) / double(t.seen), test.loss,
                                 test.accuracy, t.seconds};
        state.history.push_back(record);
        std::printf("Iteration: %ld / %ld ; Training Loss: %.6f ; Testing Acc: %.3f ; Time consumed: %s\n",
                    long(state.epoch), long(o.epochs), record.train_loss, 100.0 * record.test_acc,
                    format_duration(t.seconds).c_str());
        std::printf("    train acc %.3f, test loss %.6f, %.1f img/s, waiting for data %.1f%% of the time\n",
                    100.0 * record.train_acc, record.test_loss, double(t.seen) / t.seconds,
                    100.0 * t.data_wait_seconds / t.seconds);
        std::fflush(stdout);

        write_metrics_csv(state.history, run.path("metrics.csv"));
        draw_run_pictures(o.out, state.history, initial, params);
        run.save_training(params, *optimizer, "last", state.epoch);
        if (test.accuracy > state.best_accuracy) {
            state.best_accuracy = test.accuracy;
            run.save_training(params, *optimizer, "best", state.epoch);
        }
        state.totals = EpochTotals{};
        state.optimizer_steps = optimizer->steps();
        {
            RunState next = state;  // the loop moves on to the next epoch
            ++next.epoch;
            save_run_state(next, run.path("state.json"));
        }
    }
    std::printf("done: %s holds init/last/best.safetensors, metrics.csv, loss/accuracy curves and weight pictures\n",
                o.out.c_str());
    return 0;
}
}  // namespace

Command add_train_command(CLI::App& app) {
    auto o = std::make_shared<TrainOptions>();
    auto* t = app.add_subcommand("train", "train a DenseNet as the lecture does: Adam, NLL of log_softmax, a test after "
                                          "every epoch; resumable, with checkpoints, metrics and pictures in --out");
    t->add_option("--arch", o->arch, "densenet121, densenet161, densenet169 or densenet201")->capture_default_str();
    t->add_option("--dataset", o->dataset, "cifar10, fashion-mnist, mnist or folder")
        ->capture_default_str()
        ->check(CLI::IsMember(dataset_names()));
    t->add_option("--data-dir", o->data_dir,
                  "the data set's folder (default: data/cifar10, /usr/share/datasets/fashion-mnist, data/mnist; "
                  "folder: DIR/train/<class>/*.png|jpg and DIR/test/<class>/...)");
    t->add_flag("--download", o->download, "fetch CIFAR-10 (163 MB) into --data-dir first, checking its MD5");
    t->add_option("--init", o->init,
                  "start from this safetensors checkpoint (torchvision names); a classifier for another number of "
                  "classes is replaced");
    t->add_option("--resume", o->resume, "continue the run in this folder where it stopped");
    t->add_option("--out", o->out, "run folder: checkpoints, metrics.csv, state.json and pictures")->capture_default_str();
    t->add_flag("--overwrite", o->overwrite, "start afresh in an --out folder that already holds a run");
    t->add_option("--input-size", o->input_size, "images are resized (bilinear, as PIL) to this square")
        ->capture_default_str();
    t->add_option("--batch-size", o->batch_size, "images per step")->capture_default_str();
    t->add_option("--optimizer", o->optimizer, "adam or sgd")->capture_default_str()->check(CLI::IsMember({"adam", "sgd"}));
    t->add_option("--lr", o->lr, "learning rate")->capture_default_str();
    t->add_option("--momentum", o->momentum, "SGD momentum")->capture_default_str();
    t->add_option("--weight-decay", o->weight_decay, "L2 penalty added to the gradient")->capture_default_str();
    t->add_option("--epochs", o->epochs, "passes over the training set")->capture_default_str();
    t->add_option("--seed", o->seed, "seed of the initial weights, the shuffling and the augmentation")->capture_default_str();
    t->add_flag("--no-shuffle", o->no_shuffle, "keep the data set's order");
    t->add_option("--augment", o->augment, "none, or flip-crop: random crop with padding size/8, horizontal flip")
        ->capture_default_str()
        ->check(CLI::IsMember({"none", "flip-crop"}));
    t->add_option("--normalize", o->normalize, "none (as the lecture), or imagenet: mean (0.485, 0.456, 0.406), std "
                                               "(0.229, 0.224, 0.225)")
        ->capture_default_str()
        ->check(CLI::IsMember({"none", "imagenet"}));
    t->add_option("--limit-train", o->limit_train, "use only the first N training images (0: all)")->capture_default_str();
    t->add_option("--limit-test", o->limit_test, "use only the first N test images (0: all)")->capture_default_str();
    t->add_option("--memory", o->memory, "recompute (memory-efficient, default) or keep the BN-ReLU and bottleneck outputs")
        ->capture_default_str()
        ->check(CLI::IsMember({"recompute", "keep"}));
    t->add_option("--precision", o->precision,
                  "fp32, or bf16: mixed precision as torch.autocast, bf16 convolutions with fp32 weights, batch norm and "
                  "Adam (fp32 where the CPU has no AVX512-BF16); checkpoints are fp32 either way")
        ->capture_default_str()
        ->check(CLI::IsMember({"fp32", "bf16"}));
    t->add_option("--threads", o->threads, "compute threads (0: one per core)")->capture_default_str();
    t->add_option("--loader-threads", o->loader_threads,
                  "threads preparing batches ahead of the step (0: prepare each batch between steps, on the compute threads)")
        ->capture_default_str()
        ->check(CLI::NonNegativeNumber);
    t->add_option("--max-steps", o->max_steps,
                  "stop after N steps, as Ctrl-C does, leaving a checkpoint that --resume continues (0: no limit)")
        ->capture_default_str();
    return {t, [o, t] { return run_train(*o, *t); }};
}

}  // namespace dn
