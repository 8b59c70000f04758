// defines: EpochTotals, EpochEnd, EpochSpan, StopRequest, StepRecord, StepObserver,
//          train_epoch (one pass of forward, backward and step)
#pragma once
#include "data/batch_loader.h"
#include "dist/data_parallel.h"
#include "train/step_engine.h"

#include <atomic>
#include <cstdint>
#include <functional>

namespace dn {

// An epoch's running totals. They are saved with an interrupted run, so that the resumed epoch
// reports the figures an uninterrupted one would have.
struct EpochTotals {
    int64_t next_batch = 0;  // batches of this epoch already trained
    double loss_sum = 0.0;   // sum over images of their NLL
    int64_t correct = 0, seen = 0;
    double seconds = 0.0;    // training time spent in this epoch so far
    double data_wait_seconds = 0.0;  // of which spent waiting for the loader
    double loader_busy_seconds = 0.0;  // loader workers' time preparing batches meanwhile
    double last_learning_rate = 0.0;   // what the epoch's latest step used
};

enum class EpochEnd { completed, stopped, diverged };

// Why an epoch may end early: Ctrl-C (the flag a signal handler sets), or a step budget
// (--max-steps, counted over the whole process; 0 means none).
struct StopRequest {
    const std::atomic<bool>* interrupted = nullptr;
    int64_t max_steps = 0;
    int64_t steps_taken = 0;
};

// What one step measured, for whoever watches the run (`densenet train` logs it to TensorBoard):
// the trainer hands it over and knows nothing of where it goes.
struct StepRecord {
    int64_t step = 0;                // the optimizer's step count after this step: 1 for a run's first
    double loss = 0.0;               // the global batch's mean NLL
    double learning_rate = 0.0;      // the one this step used
    double images_per_second = 0.0;  // the global batch over this step's wall time, data wait included
};
using StepObserver = std::function<void(const StepRecord&)>;

// Which epoch of how many, and its steps: the loader's batches, or fewer where the run ends early
// (a time budget's last epoch).
struct EpochSpan {
    int64_t epoch = 1, epochs = 1;
    int64_t batches = 0;
};

// Trains from totals.next_batch to the end of the epoch (span.batches), updating totals after every step.
// diverged: a loss turned NaN or infinite; that step's update is not applied.
// replicas: the job's processes (one, or several training data-parallel); the engine must train
// with them and loader deliver this process's shard. totals are the global batch's, the same in
// every process, and every process takes the same decision to stop, at the same step.
// totals.last_learning_rate is the one the engine's last update used. on_step, when given, is
// called after each step is applied and counted in totals.
EpochEnd train_epoch(StepEngine& engine, BatchLoader& loader, const EpochSpan& span, EpochTotals& totals,
                     StopRequest& stop, DataParallel& replicas, const StepObserver& on_step = {});

}  // namespace dn
