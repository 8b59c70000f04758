#include "train/run_folder.h"

#include "model/checkpoint.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace dn {

namespace fs = std::filesystem;

namespace {
constexpr const char* kPending = ".pending";
const char* const kStems[] = {"last", "best"};

// Everything a run writes, so that --overwrite can clear an old run without touching anything else.
const char* const kRunFiles[] = {
    "init.safetensors", "last.safetensors", "last.optim.safetensors", "best.safetensors", "best.optim.safetensors",
    "ema.safetensors",
    "state.json", "metrics.csv", "loss.png", "loss.svg", "accuracy.png", "accuracy.svg", "conv0_init.png",
    "conv0_trained.png", "conv0_diff.png", "denselayer1_conv1.png"};

// The optimizer step a checkpoint was taken at, from its metadata; -1 when it doesn't say
// (written before the step was recorded).
int64_t steps_of(const std::map<std::string, std::string>& meta) {
    auto it = meta.find("optimizer_steps");
    return it == meta.end() ? -1 : std::stoll(it->second);
}
}  // namespace

RunFolder::RunFolder(std::string dir, ModelInfo info) : dir_(std::move(dir)), info_(std::move(info)) {}

std::string RunFolder::path(const std::string& name) const { return (fs::path(dir_) / name).string(); }

void RunFolder::keep_average(WeightAverage* average, TestedWeights tested) {
    if (!average && tested == TestedWeights::average) throw std::invalid_argument("there is no average of the weights to test");
    average_ = average;
    tested_ = tested;
}

void RunFolder::claim(ExistingRun existing) const {
    if (fs::exists(path("state.json"))) {
        if (existing == ExistingRun::refuse)
            throw std::invalid_argument("'" + dir_ + "' already holds a run: continue it with --resume " + dir_ +
                                        ", or pass --overwrite, or choose another --out");
        for (const char* name : kRunFiles) {
            fs::remove(path(name));
            fs::remove(path(std::string(name) + kPending));
        }
    }
    std::error_code ec;
    fs::create_directories(dir_, ec);
    remove_dead_temporaries();  // of a run killed before its first save
    if (ec) throw std::runtime_error("cannot create the run folder '" + dir_ + "': " + ec.message());
    const std::string probe = path(".write-test");
    if (!std::ofstream(probe)) throw std::runtime_error("cannot write into the run folder '" + dir_ + "'");
    fs::remove(probe, ec);
}

void RunFolder::save_weights(const Parameters& params, const std::string& file, int64_t epoch, int64_t steps,
                             const std::map<std::string, std::string>& extra) const {
    auto meta = model_metadata(info_);
    meta.insert(extra.begin(), extra.end());
    meta["epoch"] = std::to_string(epoch);
    meta["optimizer_steps"] = std::to_string(steps);
    save_checkpoint(params, path(file), meta);
}

void RunFolder::save_initial(const Parameters& params) const { save_weights(params, "init.safetensors", 0, 0); }

void RunFolder::commit(const Parameters& params, const Optimizer& optimizer, const RunState& state,
                       Checkpoints which) const {
    if (state.optimizer_steps != optimizer.steps())
        throw std::logic_error("run state and optimizer disagree on the step count");
    const int64_t epoch = state.epoch - 1;  // epochs completed
    const int stems = which == Checkpoints::last_and_best ? 2 : 1;
    for (int s = 0; s < stems; ++s) {
        const std::string stem = kStems[s];
        const bool best_is_average = stem == "best" && tested_ == TestedWeights::average;
        save_weights(best_is_average ? average_->averaged() : params, stem + ".safetensors" + kPending, epoch,
                     optimizer.steps());
        optimizer.save(params, path(stem + ".optim.safetensors" + kPending));
    }
    if (average_)
        save_weights(average_->averaged(), std::string("ema.safetensors") + kPending, epoch, optimizer.steps(),
                     {{"ema_decay", std::to_string(average_->decay())}, {"ema_updates", std::to_string(average_->updates())}});
    save_run_state(state, path("state.json"));  // the commit point
    for (int s = 0; s < stems; ++s) {
        const std::string stem = kStems[s];
        fs::rename(path(stem + ".optim.safetensors" + kPending), path(stem + ".optim.safetensors"));
        fs::rename(path(stem + ".safetensors" + kPending), path(stem + ".safetensors"));
    }
    if (average_) fs::rename(path(std::string("ema.safetensors") + kPending), path("ema.safetensors"));
}

void RunFolder::remove_dead_temporaries() const {
    // A process killed while writing a file leaves AtomicFile's NAME.tmp.PID behind. No live writer
    // shares a run folder, so each one of a run file's is a dead process's.
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir_, ec)) {
        const std::string name = entry.path().filename().string();
        const size_t tmp = name.rfind(".tmp.");
        if (tmp == std::string::npos || name.size() == tmp + 5 ||
            name.find_first_not_of("0123456789", tmp + 5) != std::string::npos)
            continue;
        std::string base = name.substr(0, tmp);
        if (base.ends_with(kPending)) base.resize(base.size() - std::strlen(kPending));
        if (std::find(std::begin(kRunFiles), std::end(kRunFiles), base) != std::end(kRunFiles)) fs::remove(entry.path());
    }
}

void RunFolder::finish_interrupted_save(const RunState& state) const {
    remove_dead_temporaries();
    // A pending file of the step state.json records was committed: it is put in place (the kill
    // came between the commit and its rename). Any other belongs to a save that never reached its
    // commit point. Each file is judged by the step it records, since the renames after the commit
    // point may have been cut anywhere: the optimizer's state renamed, the weights not yet.
    auto judge = [&](const std::string& file, const char* step_key) {
        if (!fs::exists(file + kPending)) return;
        bool committed = false;
        try {
            const auto meta = SafetensorsFile(file + kPending).metadata();
            auto it = meta.find(step_key);
            committed = it != meta.end() && std::stoll(it->second) == state.optimizer_steps;
        } catch (const std::exception&) {
            committed = false;  // a half-written file: that save never reached its commit point
        }
        if (committed) fs::rename(file + kPending, file);
        else fs::remove(file + kPending);
    };
    for (const char* stem : kStems) {
        judge(path(std::string(stem) + ".optim.safetensors"), "step");
        judge(path(std::string(stem) + ".safetensors"), "optimizer_steps");
    }
    judge(path("ema.safetensors"), "optimizer_steps");
}

RunState RunFolder::resume(Parameters& params, Optimizer& optimizer, Parameters& initial) const {
    RunState state = load_run_state(path("state.json"));
    finish_interrupted_save(state);
    load_checkpoint(initial, path("init.safetensors"));
    const int64_t weights_steps = steps_of(load_checkpoint(params, path("last.safetensors")));
    optimizer.load(params, path("last.optim.safetensors"));
    const bool agree = optimizer.steps() == state.optimizer_steps && (weights_steps < 0 || weights_steps == state.optimizer_steps);
    if (!agree)
        throw std::runtime_error("'" + dir_ + "': last.safetensors (step " + std::to_string(weights_steps) +
                                 "), last.optim.safetensors (step " + std::to_string(optimizer.steps()) +
                                 ") and state.json (step " + std::to_string(state.optimizer_steps) +
                                 ") are from different steps; start a new run from its weights with --init " +
                                 path("last.safetensors"));
    if (average_) {
        const auto meta = load_checkpoint(average_->averaged(), path("ema.safetensors"));
        auto updates = meta.find("ema_updates");
        if (steps_of(meta) != state.optimizer_steps || updates == meta.end())
            throw std::runtime_error("'" + dir_ + "': ema.safetensors is not of the step state.json records (" +
                                     std::to_string(state.optimizer_steps) + ")");
        average_->set_updates(std::stoll(updates->second));
    }
    return state;
}

}  // namespace dn
