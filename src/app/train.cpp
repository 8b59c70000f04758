// densenet train: the lecture's training run (Adam, NLL of log_softmax, a test after every epoch),
// resumable, with checkpoints, metrics and pictures in its run folder.
#include "app/commands.h"
#include "app/device_choice.h"
#include "app/run_setup.h"
#include "app/train_recipe.h"

#include "data/batch_loader.h"
#include "data/datasets.h"
#include "data/download.h"
#include "data/shard.h"
#include "dist/communicator.h"
#include "dist/data_parallel.h"
#include "io/progress_bar.h"
#include "model/checkpoint.h"
#include "model/init.h"
#include "model/model_info.h"
#include "ops/precision.h"
#include "report/run_pictures.h"
#include "report/tensorboard_writer.h"
#include "train/evaluate.h"
#include "train/lr_schedule.h"
#include "train/optimizer.h"
#include "train/parameter_update.h"
#include "train/run_folder.h"
#include "train/run_state.h"
#include "train/step_engine.h"
#include "train/time_budget.h"
#include "train/trainer.h"
#include "train/weight_average.h"

#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace dn {

namespace {
// How this process runs it: free to differ between a run and its resumption. One thread gives
// bit-identical weights whether or not the run was stopped and resumed (tested); more threads
// give results equal to rounding.
struct Controls {
    bool download = false;
    std::string resume;  // run folder to continue
    std::string out = "runs/latest";
    bool overwrite = false;
    int64_t threads = 0, loader_threads = 1;
    int64_t max_steps = 0;
    std::string batch_norm_stats = "global";  // or per-process: see BatchNormStats
    std::string device = "auto";              // a checkpoint resumes on either engine
    bool no_tf32 = false;
};

struct TrainCommand {
    Recipe recipe;
    Controls controls;
    std::string time_budget;                  // as given: "15m"
    std::vector<std::string> recipe_choices;  // what --recipe set, for the run's first lines
    std::vector<std::string> recipe_flags;  // filled as the options are declared
    CLI::App* parser = nullptr;
};

std::atomic<bool> g_interrupted{false};

extern "C" void on_interrupt(int) {
    // A second Ctrl-C ends the program at once. A save it cuts short is finished or discarded
    // on --resume (see RunFolder), so even then nothing is lost or mixed.
    if (g_interrupted.exchange(true)) std::_Exit(130);
}

ScheduleOptions schedule_options(const Recipe& r) {
    return {.kind = parse_schedule(r.schedule), .lr = r.lr, .step_size = r.step_size, .milestones = r.milestones,
            .gamma = r.gamma, .eta_min = r.eta_min, .pct_start = r.pct_start, .warmup_epochs = r.warmup_epochs,
            .warmup_start_factor = r.warmup_start_factor};
}

// As torch.optim's constructors, then OneCycleLR's, which sets the momentum (Adam's beta1) to its
// max_momentum before the first step.
std::unique_ptr<Optimizer> make_optimizer(const Recipe& r, const ScheduleOptions& schedule, int64_t count) {
    const bool cycled = schedule.kind == ScheduleKind::onecycle && schedule.cycle_momentum;
    if (r.optimizer == "adam" || r.optimizer == "adamw") {
        AdamOptions o{.lr = r.lr, .weight_decay = r.weight_decay,
                      .decay = r.optimizer == "adamw" ? WeightDecay::decoupled : WeightDecay::l2};
        if (cycled) o.beta1 = schedule.max_momentum;
        return std::make_unique<Adam>(count, o);
    }
    if (r.optimizer == "sgd")
        return std::make_unique<Sgd>(count, SgdOptions{.lr = r.lr, .momentum = cycled ? schedule.max_momentum : r.momentum,
                                                       .weight_decay = r.weight_decay});
    throw std::invalid_argument("unknown optimizer '" + r.optimizer + "' (adam, adamw, sgd)");
}

// --resume DIR: the recipe from DIR/state.json, with the overrides the command line may make.
Recipe resumed_recipe(const TrainCommand& cmd, const RunState& state) {
    for (const auto& flag : cmd.recipe_flags)
        if (flag != "--epochs" && flag != "--data-dir" && cmd.parser->count(flag))
            throw std::invalid_argument("--resume continues a run with its own options; " + flag +
                                        " cannot be changed (only --epochs, --data-dir, --device, --no-tf32, --threads, "
                                        "--loader-threads and --max-steps)");
    for (const char* flag : {"--out", "--overwrite", "--download"})
        if (cmd.parser->count(flag)) throw std::invalid_argument(std::string("--resume writes into its own folder; drop ") + flag);
    Recipe recipe = state.options.get<Recipe>();
    if (cmd.parser->count("--epochs")) {  // extended: whole epochs from here on
        recipe.epochs = cmd.recipe.epochs;
        recipe.last_epoch_batches = 0;
    }
    if (cmd.parser->count("--data-dir")) recipe.data_dir = cmd.recipe.data_dir;
    return recipe;
}

// A loader worker that is busy much of the step runs beside the OpenMP threads on cores they
// need: measured here (2 cores), one busy thread beside a 2-thread step made it 3.7x slower
// (densenet121 32x32 b64: 410 -> 112 img/s; 221 on one compute thread), because OpenMP's
// barriers wait for the pre-empted thread. At DenseNet's step times the loader is busy under 1%
// of the time, so it rarely meets a barrier; when it is busy longer, preparing batches between
// steps on the compute threads (--loader-threads 0) avoids the contention.
constexpr double kBusyLoaderShare = 0.10;
// A loader thread resizes and normalises a few thousand CIFAR images a second: eight keep a GPU
// step of 256 images at 224x224 fed.
constexpr int64_t kGpuLoaderThreads = 8;

// Communication that nothing hid, in one epoch (data parallel only).
struct CommunicationShare {
    double batch_norm_seconds = 0.0, gradient_wait_seconds = 0.0;
};

void print_epoch(const EpochRecord& r, int64_t epochs, const EpochTotals& t, int64_t loader_threads,
                 const CommunicationShare* communication) {
    std::printf("Iteration: %ld / %ld ; Training Loss: %.6f ; Testing Acc: %.3f ; Time consumed: %s\n", long(r.epoch),
                long(epochs), r.train_loss, 100.0 * r.test_acc, format_duration(t.seconds).c_str());
    std::printf("    train acc %.3f, test loss %.6f, lr %.6g, %.1f img/s, waiting for data %.1f%% of the time",
                100.0 * r.train_acc, r.test_loss, r.learning_rate, double(t.seen) / t.seconds,
                100.0 * t.data_wait_seconds / t.seconds);
    const double busy_share = t.loader_busy_seconds / t.seconds;
    if (loader_threads > 0) std::printf(", loader busy %.1f%%", 100.0 * busy_share);
    std::printf("\n");
    if (communication)
        std::printf("    communication not hidden (rank 0): batch norm %.1f%%, waiting for gradient sums %.1f%% of the "
                    "time\n",
                    100.0 * communication->batch_norm_seconds / t.seconds,
                    100.0 * communication->gradient_wait_seconds / t.seconds);
    const int64_t cores = int64_t(std::thread::hardware_concurrency());
    if (loader_threads > 0 && busy_share > kBusyLoaderShare && omp_get_max_threads() + loader_threads > cores)
        std::printf("    note: the loader was busy %.0f%% of the time beside %d compute threads on %ld cores; a busy "
                    "extra thread stalls the compute's barriers: try --loader-threads 0\n",
                    100.0 * busy_share, omp_get_max_threads(), long(cores));
    std::fflush(stdout);
}

// metrics.csv and the pictures are derived from the committed state, so they are redrawn after
// each save (and on resume); failing to draw loses nothing and is only a warning.
void write_reports(const RunFolder& run, const RunState& state, const Parameters& initial, const Parameters& params) {
    try {
        write_metrics_csv(state.history, run.path("metrics.csv"));
        draw_run_pictures(run.path(""), state.history, initial, params);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "warning: could not draw the run's metrics and pictures: %s\n", e.what());
    }
}

// TensorBoard's events are a view of the run, like its pictures: failing to write them is one
// warning, after which the run goes on without them (a reader stops at a half-written record anyway).
void log_tensorboard(std::unique_ptr<EventWriter>& tensorboard, const std::function<void(EventWriter&)>& write) {
    if (!tensorboard) return;
    try {
        write(*tensorboard);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "\nwarning: TensorBoard logging stopped: %s\n", e.what());
        tensorboard.reset();
    }
}

// A new events file for this session, which starts at first_step (see EventWriter::session_start);
// null, after a warning, if it cannot be written.
std::unique_ptr<EventWriter> open_tensorboard(const std::string& dir, int64_t first_step) {
    try {
        auto tensorboard = std::make_unique<EventWriter>(dir);
        tensorboard->session_start(first_step);
        return tensorboard;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "warning: no TensorBoard logs for this run: %s\n", e.what());
        return nullptr;
    }
}

// The device every process of a job agrees on: GPUs only where each process has one of its own.
// Each says which GPU it took (its machine and the GPU's bus id, hashed into the 52 bits a double
// holds exactly; -1: the CPU). A process on the CPU, or two shown the same GPU (which NCCL would
// refuse), send the whole job to the CPU under --device auto and fail it under --device cuda.
DeviceChoice agreed_device(Communicator& comm, const std::string& flag, const DeviceChoice& mine) {
    double identity = -1.0;
    if (mine.kind == DeviceKind::cuda) {
        char host[256] = {};
        gethostname(host, sizeof host - 1);
        std::string gpu = gpu_bus_id(mine.index);
        if (gpu.empty()) gpu = "cuda:" + std::to_string(mine.index);
        identity = double(std::hash<std::string>{}(std::string(host) + "/" + gpu) & ((uint64_t(1) << 52) - 1));
    }
    std::vector<double> all(size_t(comm.size()));
    comm.gather_all(&identity, all.data(), 1);
    std::sort(all.begin(), all.end());
    if (all.back() < 0.0) return mine;  // the CPU everywhere, each saying why
    std::string lacking;
    if (all.front() < 0.0) lacking = "not every process of the job can have a GPU of its own";
    else if (std::adjacent_find(all.begin(), all.end()) != all.end())
        lacking = "processes of the job were shown the same GPU";
    if (lacking.empty()) return mine;
    if (flag == "cuda") throw std::invalid_argument("--device cuda: " + lacking + "; --device cpu runs on the CPU");
    return {DeviceKind::cpu, 0, "the CPU (" + lacking + ")"};
}

// Rank 0 reads state.json and hands it to the others, which may not see the run folder.
RunState shared_run_state(Communicator& comm, const std::string& path) {
    std::string text;
    if (comm.rank() == 0) text = run_state_json(load_run_state(path)).dump();
    broadcast_text(comm, text, 0);
    return run_state_from_json(nlohmann::json::parse(text));
}

// After rank 0 resumed from the run folder: its weights, optimizer state and position to all.
void share_resumed_run(DataParallel& replicas, Optimizer& optimizer, WeightAverage* average, RunState& state) {
    replicas.share_parameters();
    if (average) {  // the average as rank 0 read it: weights, statistics, batch counts and updates
        Parameters& a = average->averaged();
        replicas.share({a.values(), size_t(a.count())});
        replicas.share({a.running_stats(), size_t(a.running_count())});
        for (const TensorEntry& e : a.entries())
            if (e.role == TensorRole::batch_count) replicas.share(*static_cast<int64_t*>(a.data(e)));
        int64_t updates = average->updates();
        replicas.share(updates);
        average->set_updates(updates);
    }
    for (std::span<float> array : optimizer.state_arrays()) replicas.share(array);
    int64_t steps = optimizer.steps();
    replicas.share(steps);
    optimizer.set_steps(steps);
    std::string text = run_state_json(state).dump();
    broadcast_text(replicas.communicator(), text, 0);
    state = run_state_from_json(nlohmann::json::parse(text));
}

int run_train(const TrainCommand& cmd, Communicator& comm) {
    const auto started = std::chrono::steady_clock::now();
    auto seconds_since = [](std::chrono::steady_clock::time_point t) {
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
    };
    const Controls& c = cmd.controls;
    const bool resuming = !c.resume.empty();
    const std::string out = resuming ? c.resume : c.out;
    const bool root = comm.rank() == 0;
    if (!root) {  // rank 0 alone prints; the others speak only of errors, on stderr
        if (!std::freopen("/dev/null", "w", stdout)) throw std::runtime_error("cannot silence stdout");
        silence_progress_bars();
    }
    if (c.batch_norm_stats != "global" && c.batch_norm_stats != "per-process")
        throw std::invalid_argument("--batch-norm-stats is global or per-process");
    const BatchNormStats bn_stats = c.batch_norm_stats == "global" ? BatchNormStats::global : BatchNormStats::per_process;
    RunState state;
    if (resuming) state = shared_run_state(comm, out + "/state.json");
    Recipe r = resuming ? resumed_recipe(cmd, state) : cmd.recipe;  // a time budget sets its epochs below
    if (r.batch_size <= 0) throw std::invalid_argument("--batch-size must be at least 1");
    if (r.epochs <= 0) throw std::invalid_argument("--epochs must be at least 1");
    if (!(r.lr > 0)) throw std::invalid_argument("--lr must be positive");
    if (!(r.label_smoothing >= 0 && r.label_smoothing <= 1)) throw std::invalid_argument("--label-smoothing must be in [0, 1]");
    if (!(r.clip_grad_norm >= 0)) throw std::invalid_argument("--clip-grad-norm must be positive (0: no clipping)");
    if (!(r.ema_decay >= 0 && r.ema_decay < 1)) throw std::invalid_argument("--ema-decay must be in [0, 1) (0: no average)");
    if (r.test_ema && r.ema_decay == 0) throw std::invalid_argument("--test-ema needs an average: give --ema-decay");
    const ScheduleOptions schedule_opts = schedule_options(r);
    if (r.batch_size < comm.size())
        throw std::invalid_argument("--batch-size " + std::to_string(r.batch_size) + " (the global batch) is smaller "
                                    "than the " + std::to_string(comm.size()) + " processes that share it");
    // Several processes on GPUs: one GPU each, by their places on their machines (NCCL).
    const DeviceChoice device =
        comm.size() > 1
            ? agreed_device(comm, c.device, choose_device_for_job(c.device, comm.node_rank(), comm.node_size()))
            : choose_device(c.device);
    const bool on_gpu = device.kind == DeviceKind::cuda;
    if (c.no_tf32 && !on_gpu) throw std::invalid_argument("--no-tf32 is for GPUs: the CPU engine computes in full fp32");
    const Precision precision = precision_on(device, parse_precision(r.precision));
    if (c.no_tf32 && precision != Precision::fp32)
        throw std::invalid_argument("--no-tf32 concerns fp32 convolutions, not --precision " + r.precision);
    // On a GPU the host's cores are the loader's (a GPU trains thousands of images a second): one
    // thread drives the GPU, the others prepare batches, up to kGpuLoaderThreads (each holds a
    // batch: 154 MB at 256 images of 224x224), unless the command line says otherwise. Processes
    // on one machine share its cores, and a process bound to some (mpirun's binding) has those.
    const int64_t cores = cores_per_process(comm.node_size());
    const int64_t loader_threads = on_gpu && !cmd.parser->count("--loader-threads")
                                       ? std::clamp<int64_t>(cores - 1, 1, kGpuLoaderThreads)
                                       : c.loader_threads;
    set_compute_threads(c.threads != 0 ? c.threads : on_gpu ? 1 : threads_per_process(comm.node_size()));

    // Everything that can fail on bad input happens before the run folder is touched.
    const std::string data_dir = r.data_dir.empty() ? default_data_dir(r.dataset) : r.data_dir;
    if (c.download) {
        if (r.dataset != "cifar10") throw std::invalid_argument("--download fetches CIFAR-10 only");
        // Rank 0 fetches; the others wait for it (they read the same folder, or their own copy).
        if (root) download_cifar10(data_dir);
        int64_t fetched = 1;
        comm.broadcast(&fetched, sizeof fetched, 0);
    }
    const DatasetRequest request{.name = r.dataset, .dir = data_dir, .folder_size = r.input_size, .folder_channels = 3};
    const ImageSet train_set = load_dataset(request, Split::train);
    const ImageSet test_set = load_dataset(request, Split::test);
    if (train_set.class_names != test_set.class_names)
        throw std::runtime_error("the training and test sets of '" + data_dir + "' have different classes");
    DenseNetConfig cfg = densenet_preset(r.arch, int64_t(train_set.class_names.size()));
    check_input_size(cfg, r.input_size);
    // Before anything large is allocated: the network, and two loaders of loader_threads + 2
    // batches of float images each. (On a GPU the network's memory is the device's: a batch too
    // large for it is cudaMalloc's one-line error.)
    if (!on_gpu)
        check_memory_fits(cfg, {shard_size(r.batch_size, comm.rank(), comm.size()), r.input_size, r.input_size},
                          Pass::training, r.memory == "keep" ? Intermediates::keep : Intermediates::recompute, precision,
                          2 * size_t(loader_threads + 2) * sizeof(float) *
                              size_t(cfg.in_channels * r.input_size * r.input_size),
                          r.ema_decay == 0 ? WeightAverageUse::none
                          : r.test_ema     ? WeightAverageUse::kept_and_tested
                                           : WeightAverageUse::kept);
    const Transform train_transform{.size = r.input_size, .channels = cfg.in_channels,
                                    .augment = parse_augment(r.augment),
                                    .normalization = normalization(r.normalize, cfg.in_channels)};
    Transform test_transform = train_transform;
    test_transform.augment = Augment{};
    // Each process prepares only its shard of every batch; the batches are those of one process.
    const int64_t shard = comm.rank(), shards = comm.size();
    BatchLoader train_loader(train_set, train_transform,
                             {.batch = r.batch_size, .order = r.no_shuffle ? Order::sequential : Order::shuffled,
                              .last_batch = LastBatch::drop, .limit = r.limit_train, .seed = r.seed,
                              .threads = loader_threads, .shard = shard, .shards = shards});
    BatchLoader test_loader(test_set, test_transform,
                            {.batch = r.batch_size, .order = Order::sequential, .last_batch = LastBatch::keep,
                             .limit = r.limit_test, .seed = r.seed, .threads = loader_threads, .shard = shard,
                             .shards = shards});

    Parameters params(cfg), initial(cfg);
    init_parameters(params, r.seed);
    if (!resuming && !r.init.empty()) start_from(params, r.init);
    DataParallel replicas(comm, params, r.batch_size, bn_stats);
    std::unique_ptr<Optimizer> optimizer = make_optimizer(r, schedule_opts, params.count());
    if (r.no_decay_bn_bias) optimizer->exclude_from_decay(no_decay_ranges(params));
    std::unique_ptr<WeightAverage> average;
    if (r.ema_decay > 0) average = std::make_unique<WeightAverage>(cfg, r.ema_decay);
    const TestedWeights tested = r.test_ema ? TestedWeights::average : TestedWeights::trained;
    // The schedule is set once the run's steps are known (after a time budget's fit).
    ParameterUpdate update(*optimizer, {.schedule = nullptr, .max_grad_norm = r.clip_grad_norm, .average = average.get()});
    const std::unique_ptr<StepEngine> engine = training_engine(
        device, params, update, replicas,
        {.shape = {replicas.local_batch(), r.input_size, r.input_size},
         .intermediates = r.memory == "keep" ? Intermediates::keep : Intermediates::recompute,
         .precision = precision, .label_smoothing = r.label_smoothing,
         .tested = tested},
        c.no_tf32 ? cuda::Tf32::off : cuda::Tf32::allowed);
    const TestTimeAugment tta = test_time_augment(r.test_tta);
    // A new run with a time budget: as many steps as its measured pace fits, the last epoch ending
    // early where a whole one would not fit, fitted again after each epoch (a resumed run keeps
    // what it last chose: state.json records its epochs and last_epoch_batches).
    const int64_t epoch_batches = train_loader.batches_per_epoch(), test_batches = test_loader.batches_per_epoch();
    const bool follow_budget = !resuming && r.time_budget > 0;
    // A fit as the recipe keeps it: its epochs, and the last one's steps where it ends early (0:
    // whole); then the end of the line that announces it.
    auto adopt = [&](const BudgetFit& fit) {
        r.epochs = fit.epochs;
        r.last_epoch_batches = fit.last_epoch_batches < epoch_batches ? fit.last_epoch_batches : 0;
    };
    auto print_fit = [&](int64_t steps) {
        std::printf("%ld steps, %ld epochs", long(steps), long(r.epochs));
        if (r.last_epoch_batches > 0) std::printf(", the last of %ld steps", long(r.last_epoch_batches));
        std::printf("\n");
    };
    if (follow_budget) {
        engine->from_host();
        const StepTimes times = time_steps(*engine, params, *optimizer, average.get(), train_loader, test_loader, 30, tta);
        BudgetFit fit = fit_to_budget(r.time_budget, seconds_since(started),
                                      {.step_seconds = times.train_step_seconds,
                                       .epoch_end_seconds = double(test_batches) * times.test_batch_seconds},
                                      epoch_batches);
        comm.broadcast(&fit, sizeof fit, 0);  // rank 0's measure decides for all
        adopt(fit);
        std::printf("time budget %s: %.3f s a step (%ld an epoch), %.3f s a test batch (%ld): ",
                    format_duration(r.time_budget).c_str(), times.train_step_seconds, long(epoch_batches),
                    times.test_batch_seconds, long(test_batches));
        print_fit(fit.steps(epoch_batches));
    }
    // The steps of epoch e (1-based): the last may end early.
    auto batches_of_epoch = [&](int64_t epoch) {
        return epoch == r.epochs && r.last_epoch_batches > 0 ? std::min(r.last_epoch_batches, epoch_batches) : epoch_batches;
    };
    // The schedule is a function of the step: a resumed run picks it up from the optimizer's count.
    // OneCycleLR spans the run's steps, as PyTorch's total_steps.
    ScheduleOptions spanned = schedule_opts;
    spanned.total_steps = (r.epochs - 1) * epoch_batches + batches_of_epoch(r.epochs);
    LrSchedule schedule(spanned, epoch_batches, r.epochs);
    // A budget run's new fit: its epochs, its last epoch's steps, and the schedule over them (kept
    // as it was where the schedule would refuse the new span, as a cosine's warmup longer than it).
    auto follow_fit = [&](const BudgetFit& fit, const BudgetPace& pace) {
        ScheduleOptions respanned = spanned;
        respanned.total_steps = fit.steps(epoch_batches);
        if (respanned.total_steps == spanned.total_steps) return;  // the same steps: the same epochs
        try {
            schedule = LrSchedule(respanned, epoch_batches, fit.epochs);
        } catch (const std::invalid_argument&) {
            return;
        }
        spanned = respanned;
        adopt(fit);
        std::printf("time budget: %.3f s a step and %.1f s after each epoch so far: now ", pace.step_seconds,
                    pace.epoch_end_seconds);
        print_fit(respanned.total_steps);
    };
    update.set_schedule(&schedule);

    // Rank 0 alone reads and writes the run folder; the others get what it read from it.
    RunFolder run(out, {cfg, r.input_size, train_set.class_names, r.dataset, r.normalize});
    run.keep_average(average.get(), tested);
    if (resuming) {
        if (root) state = run.resume(params, *optimizer, initial);
        share_resumed_run(replicas, *optimizer, average.get(), state);
        state.options = r;
        // In case the run stopped between a save and its reports: even a finished run's last
        // epoch (the kill test found a run killed there, whose metrics.csv lacked that epoch).
        if (root) write_reports(run, state, initial, params);
        if (state.epoch > r.epochs) {
            std::printf("%s has finished its %ld epochs; pass --epochs N to train further\n", out.c_str(), long(r.epochs));
            return 0;
        }
        std::printf("resuming %s at epoch %ld, batch %ld\n", out.c_str(), long(state.epoch), long(state.totals.next_batch));
    } else {
        state.options = r;
        if (root) {
            run.claim(c.overwrite ? ExistingRun::overwrite : ExistingRun::refuse);
            run.save_initial(params);
            load_checkpoint(initial, run.path("init.safetensors"));
            run.commit(params, *optimizer, state, Checkpoints::last);
        }
        replicas.share_parameters();  // --init was read by each; rank 0's copy is the one saved
    }
    // TensorBoard, from rank 0: a new run logs from step 0 (the initial weights), a resumed one
    // from the step after its checkpoint. An overwritten run's events go with its other files.
    std::unique_ptr<EventWriter> tensorboard;
    if (root) {
        if (!resuming && c.overwrite) remove_event_files(out);
        tensorboard = open_tensorboard(out, resuming ? optimizer->steps() + 1 : 0);
        if (!resuming) log_tensorboard(tensorboard, [&](EventWriter& w) { write_initial_events(w, initial); });
    }
    const StepObserver log_step = [&](const StepRecord& s) {
        log_tensorboard(tensorboard, [&](EventWriter& w) {
            w.scalar("step/loss", s.step, s.loss);
            w.scalar("step/learning_rate", s.step, s.learning_rate);
            w.scalar("step/images_per_second", s.step, s.images_per_second);
        });
    };
    engine->from_host();
    std::printf("training %s (%ld parameters, %ld classes) on %ld %s images at %ldx%ld, batch %ld, %s lr %g, %ld epochs, "
                "%s, on %s\nactivations: %.1f MB (%s); writing to %s\n",
                r.arch.c_str(), long(params.count()), long(cfg.num_classes), long(train_loader.images_per_epoch()),
                r.dataset.c_str(), long(r.input_size), long(r.input_size), long(r.batch_size), r.optimizer.c_str(), r.lr,
                long(r.epochs), precision_name(precision), device.description.c_str(),
                double(engine->activation_bytes()) / 1e6, r.memory.c_str(), out.c_str());
    if (!resuming && !cmd.recipe_choices.empty()) {
        std::string chose;
        for (const auto& flag : cmd.recipe_choices) chose += " " + flag;
        std::printf("recipe %s chose:%s (any flag given overrides it)\n", r.recipe.c_str(), chose.c_str());
    }
    if (const std::string extras = recipe_extras(r); !extras.empty()) std::printf("recipe: %s\n", extras.c_str());
    if (comm.size() > 1)
        std::printf("data parallel: %d processes (%d on this machine), %d compute threads each, %ld images of each batch "
                    "on rank 0; batch norm statistics %s; %.1f MB of gradients summed per step\n",
                    comm.size(), comm.node_size(), omp_get_max_threads(), long(replicas.local_batch()),
                    bn_stats == BatchNormStats::global ? "of the whole batch (synchronised)"
                                                       : "of each process's shard (per process, as plain DDP)",
                    double(replicas.gradient_bytes()) / 1e6);
    std::fflush(stdout);

    g_interrupted = false;
    std::signal(SIGINT, on_interrupt);
    std::signal(SIGTERM, on_interrupt);
    StopRequest stop{.interrupted = &g_interrupted, .max_steps = c.max_steps, .steps_taken = 0};
    auto stopped = [&] {
        engine->to_host();
        state.optimizer_steps = optimizer->steps();
        if (root) run.commit(params, *optimizer, state, Checkpoints::last);
        std::printf("stopped in epoch %ld after batch %ld; continue with: densenet train --resume %s\n",
                    long(state.epoch), long(state.totals.next_batch), out.c_str());
        return g_interrupted ? 130 : 0;
    };
    auto diverged = [&] {
        if (root) std::fprintf(stderr, "error: the loss is no longer finite (epoch %ld); stopped. %s is the last good checkpoint; "
                             "try a lower --lr\n", long(state.epoch), run.path("last.safetensors").c_str());
        return 1;
    };
    RunPace pace;  // a budget run's, over the epochs this process trains
    while (state.epoch <= r.epochs) {
        const CommunicationShare before{replicas.batch_norm_seconds(), replicas.gradient_wait_seconds()};
        const EpochEnd end =
            train_epoch(*engine, train_loader,
                        {.epoch = state.epoch, .epochs = r.epochs, .batches = batches_of_epoch(state.epoch)}, state.totals,
                        stop, replicas, log_step);
        if (end == EpochEnd::diverged) return diverged();
        if (end == EpochEnd::stopped) return stopped();
        // The tester takes this epoch's weights and statistics, or their average's.
        const auto training_ended = std::chrono::steady_clock::now();
        const std::optional<EvalResult> test =
            evaluate_sharded(engine->tester(tested), test_loader, r.test_ema ? "  testing the EMA" : "  testing", comm,
                             &g_interrupted, tta);
        if (!test) return stopped();  // the epoch's training is saved; --resume runs its test
        if (!std::isfinite(test->loss)) return diverged();  // the last step left non-finite weights

        engine->to_host();  // the epoch's weights, statistics and optimizer state, saved and drawn below
        const EpochTotals& t = state.totals;
        const EpochRecord record{.epoch = state.epoch, .train_loss = t.loss_sum / double(t.seen),
                                 .train_acc = double(t.correct) / double(t.seen), .test_loss = test->loss,
                                 .test_acc = test->accuracy, .seconds = t.seconds, .learning_rate = t.last_learning_rate};
        const CommunicationShare communication{replicas.batch_norm_seconds() - before.batch_norm_seconds,
                                               replicas.gradient_wait_seconds() - before.gradient_wait_seconds};
        // (On GPUs the collectives run on the device's stream, where the host does not time them.)
        print_epoch(record, r.epochs, t, loader_threads, comm.size() > 1 && !on_gpu ? &communication : nullptr);
        const bool best = test->accuracy > state.best_accuracy;
        RunState next = state;  // where the run continues from: the next epoch, at its start
        next.history.push_back(record);
        next.best_accuracy = std::max(state.best_accuracy, test->accuracy);
        ++next.epoch;
        next.totals = EpochTotals{};
        next.optimizer_steps = optimizer->steps();
        // Logged before the commit: a kill between the two resumes from the previous save, whose
        // session start makes TensorBoard forget these, and the epoch is logged again.
        log_tensorboard(tensorboard, [&](EventWriter& w) {
            write_epoch_events(w, optimizer->steps(), record, initial, params);
        });
        if (root) run.commit(params, *optimizer, next, best ? Checkpoints::last_and_best : Checkpoints::last);
        const int64_t epoch_steps = state.totals.next_batch;
        state = std::move(next);
        if (root) write_reports(run, state, initial, params);
        // A budget run fits the rest again, at the pace it has kept: its steps, and after each
        // epoch its test, checkpoint and reports. The next commit records the new fit.
        if (follow_budget) pace.add_epoch(record.seconds, epoch_steps, seconds_since(training_ended));
        if (follow_budget && state.epoch <= r.epochs) {
            BudgetFit fit = refit_to_budget(r.time_budget, seconds_since(started), pace, state.epoch - 1, epoch_batches);
            comm.broadcast(&fit, sizeof fit, 0);
            follow_fit(fit, pace.mean());
            state.options = r;
        }
    }
    std::printf("done: %s holds init/last/best.safetensors, metrics.csv, loss/accuracy curves and weight pictures\n",
                out.c_str());
    return 0;
}
}  // namespace

Command add_train_command(CLI::App& app) {
    auto cmd = std::make_shared<TrainCommand>();
    Recipe& r = cmd->recipe;
    Controls& c = cmd->controls;
    auto* t = app.add_subcommand("train", "train a DenseNet as the lecture does: Adam, NLL of log_softmax, a test after "
                                          "every epoch; resumable, with checkpoints, metrics and pictures in --out");
    cmd->parser = t;
    // Options of the recipe are declared through this, so that --resume knows them all.
    auto recipe_option = [&](const std::string& flag, auto& value, const std::string& help) {
        cmd->recipe_flags.push_back(flag);
        return t->add_option(flag, value, help)->capture_default_str();
    };
    auto recipe_flag = [&](const std::string& flag, bool& value, const std::string& help) {
        cmd->recipe_flags.push_back(flag);
        return t->add_flag(flag, value, help);
    };
    recipe_option("--recipe", r.recipe,
                  "lecture: the lecture's run (the defaults shown); fast: the best accuracy in a fixed time on a small "
                  "CPU (a small DenseNet-BC at the data set's own size, SGD with OneCycleLR, label smoothing, flips, "
                  "bf16, 15 minutes); flags given override its choices")
        ->check(CLI::IsMember({"lecture", "fast"}));
    cmd->recipe_flags.push_back("--time-budget");
    t->add_option("--time-budget", cmd->time_budget,
                  "fit the run's steps to this much wall time (as 15m, 900s, 1h), testing included: from the speed "
                  "of the first steps, then again after each epoch at its pace; the last epoch may end early");
    recipe_option("--arch", r.arch, "densenet121, densenet161, densenet169, densenet201, or densenet-bc-L-k: the "
                                    "DenseNet paper's network for small images (as densenet-bc-100-12)");
    recipe_option("--dataset", r.dataset, "cifar10, fashion-mnist, mnist or folder")->check(CLI::IsMember(dataset_names()));
    recipe_option("--data-dir", r.data_dir,
                  "the data set's folder (default: data/cifar10, /usr/share/datasets/fashion-mnist, data/mnist; "
                  "folder: DIR/train/<class>/*.png|jpg and DIR/test/<class>/...)");
    t->add_flag("--download", c.download, "fetch CIFAR-10 (163 MB) into --data-dir first, checking its MD5");
    recipe_option("--init", r.init,
                  "start from this checkpoint: safetensors (torchvision names) or a PyTorch .pth, such as "
                  "torchvision's ImageNet weights; a classifier for another number of classes is replaced");
    t->add_option("--resume", c.resume, "continue the run in this folder where it stopped");
    t->add_option("--out", c.out, "run folder: checkpoints, metrics.csv, state.json and pictures")->capture_default_str();
    t->add_flag("--overwrite", c.overwrite, "start afresh in an --out folder that already holds a run (its files are removed)");
    recipe_option("--input-size", r.input_size, "images are resized (bilinear, as PIL) to this square");
    recipe_option("--batch-size", r.batch_size, "images per step");
    recipe_option("--optimizer", r.optimizer, "adam, adamw (decoupled weight decay, as torch.optim.AdamW) or sgd")
        ->check(CLI::IsMember({"adam", "adamw", "sgd"}));
    recipe_option("--lr", r.lr, "learning rate (with --schedule onecycle: its max_lr)");
    recipe_option("--momentum", r.momentum, "SGD momentum");
    recipe_option("--weight-decay", r.weight_decay,
                  "adam, sgd: L2 penalty added to the gradient; adamw: decoupled decay (default 0.01 with adamw, "
                  "as PyTorch's)");
    recipe_flag("--no-decay-bn-bias", r.no_decay_bn_bias, "no weight decay on batch norm's weights and biases and the "
                                                          "classifier's bias (a second param group with weight_decay 0)");
    recipe_option("--schedule", r.schedule,
                  "learning-rate schedule, as torch.optim.lr_scheduler: constant; step (StepLR, per epoch: "
                  "--step-size, --gamma); multistep (MultiStepLR, per epoch: --milestones, --gamma); cosine "
                  "(CosineAnnealingLR over the epochs, per epoch: --eta-min); onecycle (OneCycleLR per batch with "
                  "PyTorch's defaults, --lr its max_lr, cycling Adam's beta1 or SGD's momentum 0.95-0.85)")
        ->check(CLI::IsMember({"constant", "step", "multistep", "cosine", "onecycle"}));
    recipe_option("--step-size", r.step_size, "step: epochs between decays");
    recipe_option("--milestones", r.milestones, "multistep: the epochs (0-based, as PyTorch's) at which the lr decays")
        ->delimiter(',');
    recipe_option("--gamma", r.gamma, "step, multistep: the factor of each decay");
    recipe_option("--eta-min", r.eta_min, "cosine: the lr it anneals to");
    recipe_option("--pct-start", r.pct_start, "onecycle: the share of steps spent raising the lr");
    recipe_option("--warmup-epochs", r.warmup_epochs,
                  "before the schedule, raise the lr linearly over N epochs (LinearLR, then SequentialLR)");
    recipe_option("--warmup-start-factor", r.warmup_start_factor, "the warmup's first lr, as a share of --lr");
    recipe_option("--label-smoothing", r.label_smoothing,
                  "train on nn.CrossEntropyLoss(label_smoothing=...) (the test loss stays the NLL)");
    recipe_option("--ema-decay", r.ema_decay,
                  "keep an exponential moving average of the weights and batch norm statistics, updated after every "
                  "step (AveragedModel with use_buffers), saved as ema.safetensors (0: none)");
    recipe_flag("--test-ema", r.test_ema, "test the average each epoch instead of the trained weights; best.safetensors "
                                          "keeps the best average");
    recipe_option("--test-tta", r.test_tta,
                  "none, or flip: the test after each epoch also classifies each image mirrored and averages the two "
                  "probabilities (as eval --tta flip)")
        ->check(CLI::IsMember({"none", "flip"}));
    recipe_option("--clip-grad-norm", r.clip_grad_norm,
                  "clip the gradients' global norm to this before each step (clip_grad_norm_; 0: no clipping)");
    recipe_option("--epochs", r.epochs, "passes over the training set (with --resume: extend a run)");
    recipe_option("--seed", r.seed, "seed of the initial weights, the shuffling and the augmentation");
    recipe_flag("--no-shuffle", r.no_shuffle, "keep the data set's order");
    recipe_option("--augment", r.augment,
                  "none, or a comma list of torchvision's transforms: crop (RandomCrop, padding size/8), resized-crop "
                  "(RandomResizedCrop in place of the resize), flip (RandomHorizontalFlip), erase (RandomErasing, "
                  "p 0.5, to 0); flip-crop is crop,flip")
        ->check([](const std::string& text) {
            try {
                parse_augment(text);
                return std::string();
            } catch (const std::invalid_argument& e) {
                return std::string(e.what());
            }
        });
    recipe_option("--normalize", r.normalize,
                  "none (as the lecture), or imagenet: mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225)")
        ->check(CLI::IsMember({"none", "imagenet"}));
    recipe_option("--limit-train", r.limit_train, "use only the first N training images (0: all)");
    recipe_option("--limit-test", r.limit_test, "use only the first N test images (0: all)");
    recipe_option("--memory", r.memory, "recompute the BN-ReLU outputs in backward (memory-efficient, default) or keep them")
        ->check(CLI::IsMember({"recompute", "keep"}));
    recipe_option("--precision", r.precision,
                  "fp32, or bf16: mixed precision as torch.autocast, bf16 convolutions with fp32 weights, batch norm and "
                  "Adam (fp32 where the CPU has no AVX512-BF16); checkpoints are fp32 either way")
        ->check(CLI::IsMember({"fp32", "bf16"}));
    t->add_option("--threads", c.threads,
                  "compute threads (0: one per core, shared among the processes on this machine; on a GPU, 1)")
        ->capture_default_str();
    t->add_option("--loader-threads", c.loader_threads,
                  "threads preparing batches ahead of the step (0: prepare each batch between steps, on the compute "
                  "threads; on a GPU the default is every core but one)")
        ->capture_default_str()
        ->check(CLI::NonNegativeNumber);
    t->add_option("--batch-norm-stats", c.batch_norm_stats,
                  "with several processes (mpirun): global, batch norm over the whole batch (synchronised, the "
                  "results of one process), or per-process, each over its shard (plain DDP: smaller batches' "
                  "statistics, rank 0's running statistics kept)")
        ->capture_default_str()
        ->check(CLI::IsMember({"global", "per-process"}));
    t->add_option("--device", c.device,
                  "auto (a GPU when one is visible, else the CPU), cpu, cuda or cuda:N; a run may resume on another")
        ->capture_default_str();
    t->add_flag("--no-tf32", c.no_tf32, "on a GPU, in fp32: full fp32 convolutions, not PyTorch's default TF32");
    t->add_option("--max-steps", c.max_steps,
                  "stop after N steps, as Ctrl-C does, leaving a checkpoint that --resume continues (0: no limit)")
        ->capture_default_str();
    return {t, [cmd] {
        CLI::App& parser = *cmd->parser;
        auto given = [&parser](const std::string& flag) { return parser.count(flag) > 0; };
        if (given("--epochs") && given("--time-budget"))
            throw std::invalid_argument("give --epochs or --time-budget, not both");
        if (given("--time-budget")) cmd->recipe.time_budget = parse_duration(cmd->time_budget);
        if (!given("--resume")) cmd->recipe_choices = apply_named_recipe(cmd->recipe, cmd->recipe.recipe, given);
        // AdamW's own default weight decay, as torch.optim.AdamW's, unless one was given.
        if (cmd->recipe.optimizer == "adamw" && !given("--weight-decay")) cmd->recipe.weight_decay = 0.01;
        std::unique_ptr<Communicator> comm = connect_processes();
        if (comm->size() == 1) return run_train(*cmd, *comm);
        // A process that fails ends the whole job at once, naming itself: the others would
        // otherwise wait for it in the next collective. The last checkpoint is left as it was.
        try {
            return run_train(*cmd, *comm);
        } catch (const std::exception& e) {
            std::fprintf(stderr, "error: process %d of %d: %s\n", comm->rank(), comm->size(), e.what());
            std::fflush(stderr);
            comm->abort(1);
        }
        return 1;  // not reached: abort() ends the process
    }};
}

}  // namespace dn
