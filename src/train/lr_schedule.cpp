#include "train/lr_schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <stdexcept>

namespace dn {

namespace {
constexpr const char* kNames[] = {"constant", "step", "multistep", "cosine", "onecycle"};

// OneCycleLR's _annealing_cos: from start to end as pct goes from 0 to 1.
double anneal_cos(double start, double end, double pct) {
    return end + (start - end) / 2.0 * (std::cos(std::numbers::pi * pct) + 1.0);
}
}  // namespace

ScheduleKind parse_schedule(const std::string& name) {
    for (size_t k = 0; k < std::size(kNames); ++k)
        if (name == kNames[k]) return ScheduleKind(k);
    throw std::invalid_argument("unknown schedule '" + name + "' (constant, step, multistep, cosine, onecycle)");
}

const char* schedule_name(ScheduleKind kind) { return kNames[size_t(kind)]; }

LrSchedule::LrSchedule(const ScheduleOptions& options, int64_t steps_per_epoch, int64_t epochs)
    : options_(options), steps_per_epoch_(steps_per_epoch), epochs_(epochs),
      one_cycle_steps_(options.total_steps > 0 ? options.total_steps : steps_per_epoch * epochs) {
    const ScheduleOptions& o = options_;
    auto refuse = [](const std::string& why) { throw std::invalid_argument(why); };
    if (steps_per_epoch < 1 || epochs < 1) refuse("a schedule needs at least one step and one epoch");
    if (!(o.lr > 0)) refuse("the learning rate must be positive");
    if (o.warmup_epochs < 0) refuse("--warmup-epochs cannot be negative");
    if (o.warmup_epochs > 0 && !(o.warmup_start_factor > 0 && o.warmup_start_factor <= 1))
        refuse("the warmup's start factor must be in (0, 1], as LinearLR's");
    if (o.kind == ScheduleKind::step && o.step_size < 1) refuse("--step-size must be at least 1 epoch");
    if (o.kind == ScheduleKind::multistep &&
        (o.milestones.empty() || !std::is_sorted(o.milestones.begin(), o.milestones.end())))
        refuse("--milestones must be epochs in increasing order");
    if (o.kind == ScheduleKind::cosine && o.warmup_epochs >= epochs) refuse("the warmup leaves no epoch for the cosine");
    if (o.total_steps < 0) refuse("OneCycleLR's total steps cannot be negative");
    if (o.kind == ScheduleKind::onecycle) {
        if (o.warmup_epochs > 0) refuse("OneCycleLR warms up by itself (pct_start); drop --warmup-epochs");
        if (!(o.pct_start > 0 && o.pct_start < 1)) refuse("OneCycleLR's pct_start must be in (0, 1)");
        if (!(o.div_factor > 0 && o.final_div_factor > 0)) refuse("OneCycleLR's div factors must be positive");
        // PyTorch divides by the first phase's length, float(pct_start * total_steps) - 1.
        if (o.pct_start * double(one_cycle_steps_) - 1.0 <= 0.0)
            refuse("OneCycleLR needs more steps: its first phase would be empty");
    }
}

double LrSchedule::epoch_lr(int64_t epoch) const {
    const ScheduleOptions& o = options_;
    switch (o.kind) {
        case ScheduleKind::constant:
        case ScheduleKind::onecycle: return o.lr;
        case ScheduleKind::step: return o.lr * std::pow(o.gamma, double(epoch / o.step_size));
        case ScheduleKind::multistep: {
            // bisect_right: the milestones reached, an epoch equal to one included.
            const auto passed = std::upper_bound(o.milestones.begin(), o.milestones.end(), epoch) - o.milestones.begin();
            return o.lr * std::pow(o.gamma, double(passed));
        }
        case ScheduleKind::cosine: {
            // The closed form; PyTorch steps a recursive form of it, equal to rounding.
            const double t_max = double(epochs_ - o.warmup_epochs);
            return o.eta_min + (o.lr - o.eta_min) * (1.0 + std::cos(std::numbers::pi * double(epoch) / t_max)) / 2.0;
        }
    }
    return o.lr;
}

StepHyperparameters LrSchedule::one_cycle(int64_t step) const {
    const ScheduleOptions& o = options_;
    const double total = double(one_cycle_steps_);
    const double initial_lr = o.lr / o.div_factor, min_lr = initial_lr / o.final_div_factor;
    const double first_end = o.pct_start * total - 1.0, last_end = total - 1.0;
    const double s = double(std::min<int64_t>(step, one_cycle_steps_ - 1));
    StepHyperparameters h;
    if (s <= first_end) {
        const double pct = s / first_end;
        h.lr = anneal_cos(initial_lr, o.lr, pct);
        if (o.cycle_momentum) h.momentum = anneal_cos(o.max_momentum, o.base_momentum, pct);
    } else {
        const double pct = (s - first_end) / (last_end - first_end);
        h.lr = anneal_cos(o.lr, min_lr, pct);
        if (o.cycle_momentum) h.momentum = anneal_cos(o.base_momentum, o.max_momentum, pct);
    }
    return h;
}

StepHyperparameters LrSchedule::at(int64_t step) const {
    if (options_.kind == ScheduleKind::onecycle) return one_cycle(step);
    const int64_t epoch = step / steps_per_epoch_;
    const ScheduleOptions& o = options_;
    if (epoch < o.warmup_epochs) {  // LinearLR's closed form, with end_factor 1
        const double factor = o.warmup_start_factor + (1.0 - o.warmup_start_factor) * double(epoch) / double(o.warmup_epochs);
        return {o.lr * factor, std::nullopt};
    }
    return {epoch_lr(epoch - o.warmup_epochs), std::nullopt};
}

}  // namespace dn
