// defines: UpdateRules, ParameterUpdate (what a training step does between backward and the next
//          forward: the schedule's hyper-parameters, gradient clipping, the optimizer's step),
//          clip_grad_norm
#pragma once
#include "model/parameters.h"
#include "train/lr_schedule.h"
#include "train/optimizer.h"
#include "train/weight_average.h"

namespace dn {

struct UpdateRules {
    const LrSchedule* schedule = nullptr;  // nullptr: the optimizer's own learning rate throughout
    double max_grad_norm = 0.0;            // > 0: torch.nn.utils.clip_grad_norm_(max_norm) before each step
    WeightAverage* average = nullptr;      // an EMA of the weights, folded in after each step
};

// What a step used: for the logs and the epoch line.
struct AppliedUpdate {
    int64_t step = 0;  // the optimizer's step count after it: 1 for a run's first
    double learning_rate = 0.0;
    // The gradients' global norm before clipping: 0 when not clipping, and on a GPU, which keeps it
    // on the device (reading it would stall the step; cuda::GradientNorm::last_norm can).
    double grad_norm = 0.0;
};

class ParameterUpdate {
public:
    ParameterUpdate(Optimizer& optimizer, UpdateRules rules);
    // After backward (and the replicas' gradient sums): the step's learning rate and momentum from
    // the schedule, clipping, then the optimizer's step on params.
    AppliedUpdate apply(Parameters& params);
    // The schedule's hyper-parameters for the optimizer's next step, set on it: what apply() does
    // first, and what an engine that steps the optimizer's state elsewhere (a GPU's) calls before
    // it. Returns the learning rate.
    double schedule_next_step();
    const UpdateRules& rules() const { return rules_; }
    // Set after the run's steps are fitted to a time budget (until then: the optimizer's own lr).
    void set_schedule(const LrSchedule* schedule) { rules_.schedule = schedule; }
    // Once the step is complete, batch norm's running statistics included (after the replicas
    // shared theirs): folds it into the average of the weights, if the run keeps one.
    void fold_into_average(const Parameters& params);
    Optimizer& optimizer() { return optimizer_; }
    const Optimizer& optimizer() const { return optimizer_; }

private:
    Optimizer& optimizer_;
    UpdateRules rules_;
};

// As torch.nn.utils.clip_grad_norm_ (1.13): the 2-norm of every parameter's gradient norm; when it
// exceeds max_norm, every gradient is scaled by max_norm / (norm + 1e-6), in float as PyTorch.
// Returns the norm before clipping.
double clip_grad_norm(Parameters& params, double max_norm);

}  // namespace dn
