// defines: RunFolder (a training run's files, saved so that a kill never mixes two moments),
//          Checkpoints, ExistingRun
#pragma once
#include "model/model_info.h"
#include "model/parameters.h"
#include "train/optimizer.h"
#include "train/run_state.h"
#include "train/weight_average.h"

#include <map>
#include <string>

namespace dn {

enum class Checkpoints { last, last_and_best };
enum class ExistingRun { refuse, overwrite };

// RUN_DIR holds init.safetensors, last.safetensors and best.safetensors (torchvision state_dicts
// whose metadata also records the optimizer step they were taken at), *.optim.safetensors with
// the optimizer state beside them, state.json, metrics.csv and the pictures.
//
// Every file is written atomically, but a save is several files. So a save is a small journal:
// the checkpoints are written as *.pending; state.json, written next, is the commit point; the
// pending files are then renamed into place. A kill at any moment leaves the previous save or
// this one: resume() finishes a save whose state.json was written and discards one whose wasn't.
// A run that keeps an average of its weights (--ema-decay) saves it as ema.safetensors, in the
// same journal.
class RunFolder {
public:
    RunFolder(std::string dir, ModelInfo info);
    std::string path(const std::string& name) const;

    // For the run's life: its average of the weights (saved and resumed with the rest) and the
    // weights its tests measure. Without a call, the run keeps none and tests its trained weights.
    void keep_average(WeightAverage* average, TestedWeights tested);

    // A new run: creates the folder, refusing one that already holds a run unless told to
    // overwrite it (then that run's files are removed first), and checks it can be written.
    void claim(ExistingRun existing) const;
    void save_initial(const Parameters& params) const;  // init.safetensors

    // One save: the checkpoints, then state (whose optimizer_steps must be the optimizer's).
    void commit(const Parameters& params, const Optimizer& optimizer, const RunState& state, Checkpoints which) const;

    // For --resume: completes or discards an interrupted save, then loads the last checkpoint,
    // the optimizer state, the initial weights and the average of the weights, and checks that
    // they and state.json are of the same step. Throws std::runtime_error naming the folder otherwise.
    RunState resume(Parameters& params, Optimizer& optimizer, Parameters& initial) const;

private:
    // extra: metadata beyond the model's, the epoch and the step.
    void save_weights(const Parameters& params, const std::string& file, int64_t epoch, int64_t steps,
                      const std::map<std::string, std::string>& extra = {}) const;
    void finish_interrupted_save(const RunState& state) const;
    void remove_dead_temporaries() const;

    std::string dir_;
    ModelInfo info_;
    WeightAverage* average_ = nullptr;
    TestedWeights tested_ = TestedWeights::trained;
};

}  // namespace dn
