#include "app/commands.h"

#include "data/idx.h"
#include "model/checkpoint.h"
#include "model/densenet.h"
#include "model/init.h"
#include "train/optimizer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <numeric>
#include <random>
#include <stdexcept>

namespace dn {

namespace {
struct TrainOptions {
    std::string arch = "densenet121";
    std::string dataset = "fashion-mnist";
    std::string data_dir = "/usr/share/datasets/fashion-mnist";
    std::string out = "runs/latest";
    int64_t input_size = 32;
    int64_t batch_size = 32;
    int64_t epochs = 10;
    double lr = 1e-4;
    int64_t limit_train = 0;  // 0: the whole set
    int64_t limit_test = 0;
    uint64_t seed = 0;
    std::string memory = "recompute";
};

using Clock = std::chrono::steady_clock;

// Fashion-MNIST's 28x28 grey images, zero-padded to the centre of an input_size square and
// repeated over the model's channels. (Bilinear resizing comes with the data-set issue.)
void make_batch(float* out, const ImageSet& set, const std::vector<int32_t>& order, int64_t first, int64_t n,
                int64_t channels, int64_t size) {
    const int64_t off_y = (size - set.height) / 2, off_x = (size - set.width) / 2;
    std::fill(out, out + n * channels * size * size, 0.0f);
    for (int64_t i = 0; i < n; ++i) {
        const uint8_t* img = set.pixels.data() + size_t(order[size_t(first + i)]) * size_t(set.height * set.width);
        for (int64_t c = 0; c < channels; ++c)
            for (int64_t y = 0; y < set.height; ++y)
                for (int64_t x = 0; x < set.width; ++x)
                    out[((i * channels + c) * size + y + off_y) * size + x + off_x] = float(img[y * set.width + x]) / 255.0f;
    }
}

std::string duration_text(double seconds) {
    const long s = long(seconds);
    return std::to_string(s / 60) + "m " + std::to_string(s % 60) + "s";
}
int run_train(const TrainOptions& o) {
    namespace fs = std::filesystem;
    if (o.dataset != "fashion-mnist" && o.dataset != "mnist")
        throw std::invalid_argument("dataset '" + o.dataset + "' is not supported yet (fashion-mnist, mnist)");
    if (o.batch_size <= 0) throw std::invalid_argument("--batch-size must be positive");
    if (o.epochs <= 0) throw std::invalid_argument("--epochs must be positive");
    ImageSet train = load_idx(o.data_dir + "/train-images-idx3-ubyte.gz", o.data_dir + "/train-labels-idx1-ubyte.gz");
    ImageSet test = load_idx(o.data_dir + "/t10k-images-idx3-ubyte.gz", o.data_dir + "/t10k-labels-idx1-ubyte.gz");
    if (o.input_size < train.height || o.input_size < train.width)
        throw std::invalid_argument("--input-size must be at least the images' " + std::to_string(train.height));
    const int64_t train_count = o.limit_train > 0 ? std::min(o.limit_train, train.count) : train.count;
    const int64_t test_count = o.limit_test > 0 ? std::min(o.limit_test, test.count) : test.count;

    DenseNetConfig cfg = densenet_preset(o.arch, 10);
    Parameters params(cfg);
    init_parameters(params, o.seed);
    DnnlContext ctx;
    const int64_t B = o.batch_size, S = o.input_size, C = cfg.in_channels;
    const Intermediates mode = o.memory == "keep" ? Intermediates::keep : Intermediates::recompute;
    DenseNet net(ctx, params, {B, S, S}, Pass::training, mode);
    AdamOptions adam_options;
    adam_options.lr = o.lr;
    Adam adam(params.count(), adam_options);

    std::error_code ec;
    fs::create_directories(o.out, ec);
    if (ec) throw std::runtime_error("cannot create output folder '" + o.out + "': " + ec.message());
    const std::map<std::string, std::string> meta{{"arch", o.arch}, {"input_size", std::to_string(S)}, {"dataset", o.dataset}};
    save_checkpoint(params, o.out + "/init.safetensors", meta);
    std::printf("training %s (%ld parameters) on %ld %s images at %ldx%ld, batch %ld, Adam lr %g; activation arena %.1f MB\n",
                o.arch.c_str(), long(params.count()), long(train_count), o.dataset.c_str(), long(S), long(S), long(B),
                o.lr, net.plan().memory.total_bytes() / 1e6);

    std::string csv = "epoch,train_loss,train_acc,test_loss,test_acc,seconds\n";
    std::vector<float> x(size_t(B * C * S * S));
    std::vector<int32_t> order(static_cast<size_t>(train.count)), y(static_cast<size_t>(B));
    std::mt19937_64 rng(o.seed);
    for (int64_t epoch = 1; epoch <= o.epochs; ++epoch) {
        const auto start = Clock::now();
        std::iota(order.begin(), order.end(), 0);
        std::shuffle(order.begin(), order.begin() + train_count, rng);
        double loss_sum = 0.0;
        int64_t seen = 0, correct = 0;
        for (int64_t b = 0; b + B <= train_count; b += B) {
            make_batch(x.data(), train, order, b, B, C, S);
            for (int64_t i = 0; i < B; ++i) y[size_t(i)] = train.labels[size_t(order[size_t(b + i)])];
            float loss = net.forward(x.data(), y.data(), Mode::train);
            if (!std::isfinite(loss)) {
                std::fprintf(stderr, "\nerror: the loss became %f at epoch %ld; stopped, %s/last.safetensors is the last good checkpoint\n",
                             double(loss), long(epoch), o.out.c_str());
                return 1;
            }
            for (int64_t i = 0; i < B; ++i) {
                const float* z = net.logits() + i * 10;
                correct += (std::max_element(z, z + 10) - z) == y[size_t(i)];
            }
            net.backward();
            adam.step(params.values(), params.grads());
            net.load_weights();
            loss_sum += double(loss) * double(B);
            seen += B;
            const double secs = std::chrono::duration<double>(Clock::now() - start).count();
            const double rate = double(seen) / secs;
            const int width = 30, done = int(width * seen / train_count);
            std::fprintf(stderr, "\r  epoch %ld [%.*s%*s] %ld/%ld  %.1f img/s  ETA %s  loss %.4f   ", long(epoch), done,
                         "##############################", width - done, "", long(seen), long(train_count), rate,
                         duration_text(double(train_count - seen) / rate).c_str(), loss_sum / double(seen));
        }
        std::fprintf(stderr, "\n");

        std::vector<int32_t> test_order(static_cast<size_t>(test.count));
        std::iota(test_order.begin(), test_order.end(), 0);
        double test_loss = 0.0;
        int64_t test_correct = 0;
        for (int64_t b = 0; b < test_count; b += B) {
            const int64_t n = std::min(B, test_count - b);
            make_batch(x.data(), test, test_order, b, n, C, S);
            std::fill(y.begin(), y.end(), 0);
            for (int64_t i = 0; i < n; ++i) y[size_t(i)] = test.labels[size_t(b + i)];
            net.forward(x.data(), y.data(), Mode::eval);
            for (int64_t i = 0; i < n; ++i) {
                const float* lp = net.log_probs() + i * 10;
                test_loss -= lp[y[size_t(i)]];
                test_correct += (std::max_element(lp, lp + 10) - lp) == y[size_t(i)];
            }
        }
        const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
        const double train_loss = loss_sum / double(std::max<int64_t>(seen, 1));
        const double test_acc = 100.0 * double(test_correct) / double(test_count);
        std::printf("Iteration: %ld / %ld ; Training Loss: %.6f ; Testing Acc: %.3f ; Time consumed: %s\n", long(epoch),
                    long(o.epochs), train_loss, test_acc, duration_text(seconds).c_str());
        std::fflush(stdout);
        char row[256];
        std::snprintf(row, sizeof row, "%ld,%.6f,%.4f,%.6f,%.4f,%.1f\n", long(epoch), train_loss,
                      double(correct) / double(std::max<int64_t>(seen, 1)), test_loss / double(test_count),
                      test_acc / 100.0, seconds);
        csv += row;
        {
            std::ofstream out(o.out + "/metrics.csv.tmp", std::ios::trunc);
            out << csv;
            if (!out) throw std::runtime_error("cannot write '" + o.out + "/metrics.csv'");
        }
        fs::rename(o.out + "/metrics.csv.tmp", o.out + "/metrics.csv");
        save_checkpoint(params, o.out + "/last.safetensors", meta);
        adam.save(params, o.out + "/last.optim.safetensors");
    }
    std::printf("wrote %s/{init,last}.safetensors, last.optim.safetensors and metrics.csv\n", o.out.c_str());
    return 0;
}
}  // namespace

Command add_train_command(CLI::App& app) {
    auto o = std::make_shared<TrainOptions>();
    auto* t = app.add_subcommand("train", "train on Fashion-MNIST or MNIST (IDX files) with Adam and NLL(log_softmax)");
    t->add_option("--arch", o->arch, "model architecture")->capture_default_str();
    t->add_option("--dataset", o->dataset, "fashion-mnist or mnist")->capture_default_str();
    t->add_option("--data-dir", o->data_dir, "folder with the IDX files")->capture_default_str();
    t->add_option("--out", o->out, "run folder for checkpoints and metrics")->capture_default_str();
    t->add_option("--input-size", o->input_size, "images are padded to this size")->capture_default_str();
    t->add_option("--batch-size", o->batch_size, "images per step")->capture_default_str();
    t->add_option("--epochs", o->epochs, "passes over the training images")->capture_default_str();
    t->add_option("--lr", o->lr, "Adam learning rate")->capture_default_str();
    t->add_option("--limit-train", o->limit_train, "use only the first N training images (0: all)")->capture_default_str();
    t->add_option("--limit-test", o->limit_test, "use only the first N test images (0: all)")->capture_default_str();
    t->add_option("--seed", o->seed, "initialisation and shuffling seed")->capture_default_str();
    t->add_option("--memory", o->memory, "recompute (memory-efficient) or keep the BN-ReLU and bottleneck outputs")
        ->capture_default_str()
        ->check(CLI::IsMember({"recompute", "keep"}));
    return {t, [o] { return run_train(*o); }};
}

}  // namespace dn
