// defines: StepTimes, time_steps, BudgetFit, BudgetPace, fit_to_budget, RunPace, refit_to_budget (fitting a
//          run's steps to a wall-clock budget)
#pragma once
#include "data/batch_loader.h"
#include "train/evaluate.h"
#include "train/optimizer.h"
#include "train/step_engine.h"
#include "train/weight_average.h"

#include <cstdint>

namespace dn {

struct StepTimes {
    double train_step_seconds = 0.0;  // forward, backward, the replicas' sums, the run's update
    double test_batch_seconds = 0.0;  // its forward passes in eval mode (two with flip averaging)
};

// Times `steps` training steps (after up to five untimed ones) on the run's engine, its update at
// lr 0 (the run's schedule is set only once its steps are fitted), and five test
// batches (after one, each with the forward passes `tta` takes) on its tester, each on its own,
// and keeps the median of each; then puts the weights, statistics, batch counts, the optimizer's
// state and the average (when the run keeps one) back as they were: the run starts as if nothing
// had been measured. Every process takes part (the steps sum gradients); the times are this
// process's.
StepTimes time_steps(StepEngine& engine, Parameters& params, Optimizer& optimizer, WeightAverage* average,
                     BatchLoader& train_loader, BatchLoader& test_loader, int64_t steps, TestTimeAugment tta);

// What a time budget fits: epochs, each of the whole training set but the last, which may end
// early, after last_epoch_batches steps; each epoch followed by a test. The schedule spans the
// steps, as OneCycleLR's total_steps.
struct BudgetFit {
    int64_t epochs = 1;
    int64_t last_epoch_batches = 0;  // the last epoch's steps (train_batches when it is whole)
    int64_t steps(int64_t train_batches) const { return (epochs - 1) * train_batches + last_epoch_batches; }
};

// What a budget run's time goes to: each training step, and what follows each epoch (its test,
// and the checkpoint and reports saved after it).
struct BudgetPace {
    double step_seconds = 0.0;
    double epoch_end_seconds = 0.0;
};

// The most training steps that fit, each epoch with its end, in what is left of budget_seconds
// after spent_seconds, keeping 4% for the drift within an epoch. A last epoch of under a tenth of
// the others is not worth its test: it is dropped (or, when nothing more fits, kept at that
// tenth). At least one step; with no step time measured, one whole epoch.
BudgetFit fit_to_budget(double budget_seconds, double spent_seconds, const BudgetPace& pace, int64_t train_batches);

// The pace a run has kept so far, over the epochs it has trained.
struct RunPace {
    double train_seconds = 0.0, epoch_end_seconds = 0.0;
    int64_t steps = 0, epochs = 0;
    void add_epoch(double epoch_train_seconds, int64_t epoch_steps, double end_seconds);
    BudgetPace mean() const;
};

// The whole run's fit again after `epochs_done` epochs, spent_seconds into it, the rest at the
// pace the run has kept: a machine slower or faster than its first steps showed neither overruns
// the budget nor leaves it unused. The mean over the run, not the last epoch's pace: on 2 cores
// epochs drift 10% either way from one to the next, and the fit would swing with them.
BudgetFit refit_to_budget(double budget_seconds, double spent_seconds, const RunPace& pace, int64_t epochs_done,
                          int64_t train_batches);

}  // namespace dn
