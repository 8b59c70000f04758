#include "app/commands.h"
#include "app/device_choice.h"
#include "app/gpu/bench_report.h"

#include "model/densenet.h"
#include "model/init.h"
#include "model/synthetic_batch.h"
#include "ops/profiler.h"
#include "report/machine_peak.h"
#include "report/profile_report.h"
#include "train/optimizer.h"

#include <nlohmann/json.hpp>
#include <omp.h>
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

namespace dn {

namespace {
struct BenchOptions {
    std::string arch = "densenet121";
    int64_t num_classes = 10;
    int64_t input_size = 224;
    int64_t batch_size = 32;
    int64_t steps = 3;
    int64_t warmup = 1;
    std::string mode = "train";
    std::string precision = "fp32";
    std::string memory = "recompute";
    int64_t threads = 0;  // 0: every core
    std::string device = "auto";
    bool no_tf32 = false;
    bool json = false;
    bool profile = false;
};

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

// Seconds per step spent in each part of the lecture's training step, summed over the timed steps.
struct Sections {
    double forward = 0.0, backward = 0.0, optimizer = 0.0, load_weights = 0.0;
};

void validate(const BenchOptions& o) {
    auto positive = [](int64_t v, const char* flag) {
        if (v <= 0) throw std::invalid_argument(std::string(flag) + " must be positive");
    };
    positive(o.batch_size, "--batch-size");
    positive(o.steps, "--steps");
    positive(o.input_size, "--input-size");
    positive(o.num_classes, "--num-classes");
    if (o.warmup < 0) throw std::invalid_argument("--warmup must not be negative");
    if (o.threads < 0) throw std::invalid_argument("--threads must not be negative (0: every core)");
    if (o.mode != "train" && o.mode != "infer") throw std::invalid_argument("--mode must be train or infer, not '" + o.mode + "'");
    if (o.memory != "recompute" && o.memory != "keep")
        throw std::invalid_argument("--memory must be recompute or keep, not '" + o.memory + "'");
    parse_precision(o.precision);
}

// One timed run: the model, its synthetic batch, and the optimizer when training.
class BenchRun {
public:
    BenchRun(const BenchOptions& o, Precision precision)
        : params_(densenet_preset(o.arch, o.num_classes)), train_(o.mode == "train"),
          batch_(synthetic_batch(o.batch_size, params_.config().in_channels, o.input_size, o.num_classes)) {
        init_parameters(params_, 0);
        const int64_t N = o.batch_size, S = o.input_size;
        const Intermediates intermediates = o.memory == "keep" ? Intermediates::keep : Intermediates::recompute;
        net_ = std::make_unique<DenseNet>(ctx_, params_, RunShape{N, S, S}, train_ ? Pass::training : Pass::inference,
                                          intermediates, precision);
        if (train_) {
            AdamOptions adam;
            adam.lr = 1e-4;
            adam_.emplace(params_.count(), adam);
        }
    }

    const DenseNet& net() const { return *net_; }

    void step(Sections* sections) {
        if (!train_) {
            net_->forward(batch_.images.data(), batch_.labels.data(), Mode::eval);
            return;
        }
        auto t = Clock::now();
        net_->forward(batch_.images.data(), batch_.labels.data(), Mode::train);
        record(sections, &Sections::forward, t);
        net_->backward();
        record(sections, &Sections::backward, t);
        adam_->step(params_.values(), params_.grads());
        record(sections, &Sections::optimizer, t);
        net_->load_weights();
        record(sections, &Sections::load_weights, t);
    }

private:
    static void record(Sections* sections, double Sections::*field, Clock::time_point& t) {
        const auto now = Clock::now();
        if (sections) sections->*field += std::chrono::duration<double>(now - t).count();
        t = now;
    }

    DnnlContext ctx_;
    Parameters params_;
    bool train_;
    std::unique_ptr<DenseNet> net_;
    std::optional<Adam> adam_;
    SyntheticBatch batch_;
};

// The same steps on a GPU (cuda::run_bench), printed and reported as the CPU's.
int run_gpu_bench(const BenchOptions& o, const DeviceChoice& device) {
    if (o.profile) throw std::invalid_argument("--profile measures the CPU engine's phases; on a GPU, use nsys");
    cuda::BenchSetup setup;
    setup.arch = o.arch;
    setup.num_classes = o.num_classes;
    setup.input_size = o.input_size;
    setup.batch_size = o.batch_size;
    setup.steps = o.steps;
    setup.warmup = o.warmup;
    setup.pass = o.mode == "train" ? Pass::training : Pass::inference;
    setup.intermediates = o.memory == "keep" ? Intermediates::keep : Intermediates::recompute;
    // No fallback as the CPU's: the engine is built for Hopper GPUs, whose tensor cores multiply bf16.
    setup.precision = parse_precision(o.precision);
    if (o.no_tf32 && setup.precision != Precision::fp32)
        throw std::invalid_argument("--no-tf32 concerns fp32 convolutions, not --precision " + o.precision);
    setup.tf32 = o.no_tf32 ? cuda::Tf32::off : cuda::Tf32::allowed;
    setup.device = device.index;
    const cuda::BenchResult result = gpu_engine()->run_bench(setup);
    std::printf("%s", gpu_bench_summary(setup, result).c_str());
    if (o.json) std::printf("%s\n", gpu_bench_json(setup, result).dump().c_str());
    return 0;
}

int run_bench(const BenchOptions& o) {
    validate(o);
    const DeviceChoice device = choose_device(o.device);
    if (device.kind == DeviceKind::cuda) return run_gpu_bench(o, device);
    if (o.no_tf32) throw std::invalid_argument("--no-tf32 is for GPUs: the CPU engine computes in full fp32");
    // Before anything is built: oneDNN sizes its OpenMP work to the thread count it first sees.
    omp_set_num_threads(o.threads > 0 ? int(o.threads) : omp_get_num_procs());
    const int threads = omp_get_max_threads();

    const Precision precision = usable_precision(parse_precision(o.precision));
    BenchRun run(o, precision);
    for (int64_t i = 0; i < o.warmup; ++i) run.step(nullptr);

    Profiler profiler;
    Sections sections;
    const auto start = Clock::now();
    {
        std::optional<ProfilerScope> scope;
        if (o.profile) scope.emplace(profiler);
        for (int64_t i = 0; i < o.steps; ++i) run.step(&sections);
    }
    const double step_seconds = seconds_since(start) / double(o.steps);
    const double images_per_second = double(o.batch_size) / step_seconds;
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    const int64_t peak_rss_bytes = int64_t(usage.ru_maxrss) * 1024;

    const bool train = o.mode == "train";
    std::printf("%s %s %s, %ldx%ld, batch %ld, on %s, %d threads%s%s: %ld timed steps after %ld warm-up\n",
                o.arch.c_str(), o.mode.c_str(), precision_name(precision), long(o.input_size), long(o.input_size),
                long(o.batch_size), device.description.c_str(), threads, train ? ", memory " : "",
                train ? o.memory.c_str() : "", long(o.steps), long(o.warmup));
    std::printf("  %.3f images/s, %.4f s per step, peak resident memory %.1f MB (activation arena %.1f MB)\n",
                images_per_second, step_seconds, double(peak_rss_bytes) / 1e6, run.net().plan().memory.total_bytes() / 1e6);
    if (train) {
        const double s = double(o.steps);
        std::printf("  per step: forward %.4f s, backward %.4f s, optimizer %.4f s, weight reorders %.4f s\n",
                    sections.forward / s, sections.backward / s, sections.optimizer / s, sections.load_weights / s);
    }

    nlohmann::ordered_json result{{"peer", "densenet.cpp"},
                                  {"arch", o.arch},
                                  {"mode", o.mode},
                                  {"precision", precision_name(precision)},
                                  {"input_size", o.input_size},
                                  {"batch_size", o.batch_size},
                                  {"device", "cpu"},
                                  {"threads", threads},
                                  {"num_classes", o.num_classes},
                                  {"steps", o.steps},
                                  {"warmup", o.warmup},
                                  {"seconds_per_step", step_seconds},
                                  {"images_per_second", images_per_second},
                                  {"peak_rss_bytes", peak_rss_bytes}};
    if (train) result["memory"] = o.memory;
    if (o.profile) {
        // Measured after the run, so that neither its time nor its buffers touch the figures above.
        const MachinePeak peak = measure_machine_peak();
        std::printf("\nper-phase profile of the %ld timed steps:\n%s", long(o.steps),
                    profile_table(profiler, o.steps, step_seconds, peak).c_str());
        result["profile"] = profile_json(profiler, o.steps, step_seconds, peak);
    }
    if (o.json) std::printf("%s\n", result.dump().c_str());
    return 0;
}
}  // namespace

Command add_bench_command(CLI::App& app) {
    auto o = std::make_shared<BenchOptions>();
    auto* cmd = app.add_subcommand("bench", "time training or inference steps on synthetic images (as ../shared/peer/pytorch_bench.py)");
    cmd->add_option("--arch", o->arch, "densenet121, densenet161, densenet169 or densenet201")->capture_default_str();
    cmd->add_option("--num-classes", o->num_classes, "classifier outputs")->capture_default_str();
    cmd->add_option("--input-size", o->input_size, "square images of this size")->capture_default_str();
    cmd->add_option("--batch-size", o->batch_size, "images per step")->capture_default_str();
    cmd->add_option("--steps", o->steps, "timed steps")->capture_default_str();
    cmd->add_option("--warmup", o->warmup, "untimed steps first")->capture_default_str();
    cmd->add_option("--mode", o->mode, "train (forward, NLL, backward, Adam) or infer (forward in eval mode)")->capture_default_str();
    cmd->add_option("--precision", o->precision, "fp32, or bf16: mixed precision, bf16 convolutions (fp32 where the CPU has no AVX512-BF16)")->capture_default_str();
    cmd->add_option("--memory", o->memory, "recompute the BN-ReLU outputs in backward (memory-efficient) or keep them")
        ->capture_default_str();
    cmd->add_option("--threads", o->threads, "OpenMP threads (0: every core)")->capture_default_str();
    cmd->add_option("--device", o->device, "auto (a GPU when one is visible, else the CPU), cpu, cuda or cuda:N")
        ->capture_default_str();
    cmd->add_flag("--no-tf32", o->no_tf32, "on a GPU, in fp32: full fp32 convolutions, not PyTorch's default TF32");
    cmd->add_flag("--json", o->json, "end with one line of JSON");
    cmd->add_flag("--profile", o->profile, "print where the time of a step goes, phase by phase");
    return {cmd, [o] { return run_bench(*o); }};
}

}  // namespace dn
