// defines: ScheduleKind, ScheduleOptions, StepHyperparameters, LrSchedule: torch.optim.lr_scheduler's
//          StepLR, MultiStepLR, CosineAnnealingLR and OneCycleLR, after an optional LinearLR warmup,
//          as pure functions of the step (so a resumed run needs no scheduler state)
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace dn {

enum class ScheduleKind { constant, step, multistep, cosine, onecycle };

// Stepped as PyTorch's documentation steps each: StepLR, MultiStepLR and CosineAnnealingLR (and
// the warmup before them) once per epoch, OneCycleLR once per batch. Epoch counts are 0-based, as
// the schedulers' last_epoch.
struct ScheduleOptions {
    ScheduleKind kind = ScheduleKind::constant;
    double lr = 1e-4;  // the optimizer's lr: the base of every schedule, OneCycleLR's max_lr
    // StepLR (step_size, gamma) and MultiStepLR (milestones, gamma)
    int64_t step_size = 30;
    std::vector<int64_t> milestones;
    double gamma = 0.1;
    // CosineAnnealingLR: T_max is the epochs after the warmup
    double eta_min = 0.0;
    // OneCycleLR, over every step of the run: cosine annealing in two phases. total_steps as
    // PyTorch's: 0 means epochs x steps per epoch; a time budget sets it to end inside an epoch.
    int64_t total_steps = 0;
    double pct_start = 0.3, div_factor = 25.0, final_div_factor = 1e4;
    double base_momentum = 0.85, max_momentum = 0.95;  // Adam's beta1, or SGD's momentum
    bool cycle_momentum = true;
    // LinearLR(start_factor, total_iters = warmup_epochs) before the schedule, as SequentialLR
    // chains them: the schedule starts from its own epoch 0 when the warmup ends.
    int64_t warmup_epochs = 0;
    double warmup_start_factor = 1.0 / 3.0;
};

// What one optimizer step uses; momentum only where the schedule sets it (OneCycleLR).
struct StepHyperparameters {
    double lr = 0.0;
    std::optional<double> momentum;
};

class LrSchedule {
public:
    // Throws std::invalid_argument for options PyTorch would refuse (or this would misread).
    LrSchedule(const ScheduleOptions& options, int64_t steps_per_epoch, int64_t epochs);

    // For the run's step `step`, counted from 0 (the optimizer's step count before it).
    StepHyperparameters at(int64_t step) const;
    const ScheduleOptions& options() const { return options_; }

private:
    double epoch_lr(int64_t epoch) const;  // the per-epoch schedules after the warmup
    StepHyperparameters one_cycle(int64_t step) const;

    ScheduleOptions options_;
    int64_t steps_per_epoch_, epochs_;
    int64_t one_cycle_steps_;  // OneCycleLR's total_steps
};

// "cosine" -> ScheduleKind::cosine and back; throws std::invalid_argument naming the choices.
ScheduleKind parse_schedule(const std::string& name);
const char* schedule_name(ScheduleKind kind);

}  // namespace dn
