// defines: RunState (where a training run stands), save_run_state, load_run_state
#pragma once
#include "train/epoch_record.h"
#include "train/trainer.h"

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace dn {

// RUN_DIR/state.json, written after every epoch and when a run stops early, together with
// last.safetensors and last.optim.safetensors. It holds what --resume needs to continue exactly
// where the run stopped: the options the run was started with, the position in the epoch and its
// running totals, and the history that metrics.csv and the curves are drawn from.
struct RunState {
    nlohmann::json options;      // the train command's options, as given
    int64_t epoch = 1;           // the epoch in progress (or the next to start)
    EpochTotals totals;          // of that epoch so far
    int64_t optimizer_steps = 0;  // must equal the saved optimizer's, or the files don't belong together
    double best_accuracy = -1.0;
    std::vector<EpochRecord> history;
};

// state.json's content, and back (throws on a malformed one).
nlohmann::json run_state_json(const RunState& state);
RunState run_state_from_json(const nlohmann::json& j);

// Atomic (temporary file, then rename).
void save_run_state(const RunState& state, const std::string& path);
// Throws std::runtime_error naming the file if it is missing or malformed.
RunState load_run_state(const std::string& path);

// metrics.csv: epoch,train_loss,train_acc,test_loss,test_acc,seconds,lr; atomic.
void write_metrics_csv(const std::vector<EpochRecord>& history, const std::string& path);

}  // namespace dn
