// defines: StepTimes, time_steps, epochs_within (fitting a run's epochs to a wall-clock budget)
#pragma once
#include "data/batch_loader.h"
#include "dist/data_parallel.h"
#include "model/densenet.h"
#include "train/evaluate.h"

#include <cstdint>

namespace dn {

struct StepTimes {
    double train_step_seconds = 0.0;  // forward, backward, the replicas' sums, an Adam step
    double test_batch_seconds = 0.0;  // its forward passes in eval mode (two with flip averaging)
};

// Times `steps` training steps (after two untimed ones) on the run's network, and five test
// batches (after one, each with the forward passes `tta` takes) on its tester, each on its own,
// and keeps the median of each; then puts the weights, statistics and batch counts back as they
// were: the run starts as if nothing had been measured. Adam stands in for the run's optimizer
// (the dearest of them; an update costs under 1% of a DenseNet step). Every process takes part
// (the steps sum gradients); the times are this process's.
StepTimes time_steps(DenseNet& net, DenseNet& tester, Parameters& params, BatchLoader& train_loader,
                     BatchLoader& test_loader, DataParallel& replicas, int64_t steps, TestTimeAugment tta);

// How many whole epochs, each `train_batches` steps and a test of `test_batches`, fit in what is
// left of budget_seconds after spent_seconds, keeping 8% for slower steps later on, saves and
// reports; at least 1.
int64_t epochs_within(double budget_seconds, double spent_seconds, const StepTimes& times, int64_t train_batches,
                      int64_t test_batches);

}  // namespace dn
