#include "train/time_budget.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <span>
#include <vector>

namespace dn {

namespace {
using Clock = std::chrono::steady_clock;
double since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

// The median of per-step times: a machine shared with others (a virtual machine's neighbours)
// stalls a step now and then, and a mean of a few steps takes that stall for the pace.
double median_seconds(std::vector<double> seconds) {
    if (seconds.empty()) return 0.0;
    std::nth_element(seconds.begin(), seconds.begin() + std::ptrdiff_t(seconds.size() / 2), seconds.end());
    return seconds[seconds.size() / 2];
}
}  // namespace

StepTimes time_steps(StepEngine& engine, Parameters& params, Optimizer& optimizer, WeightAverage* average,
                     BatchLoader& train_loader, BatchLoader& test_loader, int64_t steps, TestTimeAugment tta) {
    engine.to_host();
    Parameters saved(params.config());
    saved.copy_state_from(params);
    std::vector<std::vector<float>> saved_state;
    for (std::span<float> array : optimizer.state_arrays()) saved_state.emplace_back(array.begin(), array.end());
    const int64_t saved_steps = optimizer.steps(), saved_updates = average ? average->updates() : 0;
    // The steps run the optimizer's arithmetic at lr 0: the weights stay sane (a OneCycle max_lr
    // from the first step could make them NaN), and are restored anyway.
    const double saved_lr = optimizer.learning_rate();
    optimizer.set_learning_rate(0.0);
    Parameters saved_average(params.config());
    if (average) saved_average.copy_state_from(average->averaged());
    StepTimes times;
    // The first steps build primitives and wait for the loader to start: untimed, unless they are
    // all an epoch has.
    train_loader.start_epoch(1);
    const int64_t available = train_loader.batches_per_epoch();
    const int64_t untimed = std::clamp<int64_t>(available - 1, 0, 5), timed = std::min<int64_t>(steps, available - untimed);
    std::vector<double> step_seconds;
    for (int64_t s = 0; s < untimed + timed; ++s) {
        const Clock::time_point start = Clock::now();
        const Batch* batch = train_loader.next();
        engine.forward(batch->images.data(), batch->labels.data());
        engine.backward_and_update();
        if (s >= untimed) step_seconds.push_back(since(start));
    }
    times.train_step_seconds = median_seconds(step_seconds);
    test_loader.start_epoch(1);
    const int64_t test_batches = test_loader.batches_per_epoch();
    const int64_t untimed_tests = std::clamp<int64_t>(test_batches - 1, 0, 1), tests = std::min<int64_t>(5, test_batches - untimed_tests);
    std::vector<double> test_seconds;
    Classifier& tester = engine.tester(TestedWeights::trained);
    for (int64_t t = 0; t < untimed_tests + tests; ++t) {
        const Clock::time_point start = Clock::now();
        const Batch* batch = test_loader.next();
        for (int pass = 0; pass < forward_passes(tta); ++pass)
            tester.forward(batch->images.data(), batch->labels.data(), Mode::eval);
        if (t >= untimed_tests) test_seconds.push_back(since(start));
    }
    times.test_batch_seconds = median_seconds(test_seconds);
    params.copy_state_from(saved);
    std::vector<std::span<float>> state = optimizer.state_arrays();
    for (size_t i = 0; i < state.size(); ++i) std::copy(saved_state[i].begin(), saved_state[i].end(), state[i].begin());
    optimizer.set_steps(saved_steps);
    optimizer.set_learning_rate(saved_lr);
    if (average) {
        average->averaged().copy_state_from(saved_average);
        average->set_updates(saved_updates);
    }
    engine.from_host();
    return times;
}

BudgetFit fit_to_budget(double budget_seconds, double spent_seconds, const BudgetPace& pace, int64_t train_batches) {
    const double step = pace.step_seconds, end = pace.epoch_end_seconds;
    if (!(step > 0) || train_batches < 1) return {.epochs = 1, .last_epoch_batches = std::max<int64_t>(1, train_batches)};
    // The machine drifts (seen on 2 cores: epochs of 85 to 107 s in one 15-minute run, and a pace
    // measured on the first steps 10% off either way), which refit_to_budget follows from epoch to
    // epoch; 4% of the budget is kept for the drift within the last epoch.
    const double left = 0.96 * budget_seconds - spent_seconds, epoch = double(train_batches) * step + end;
    const int64_t shortest = std::max<int64_t>(1, (train_batches + 9) / 10);
    const int64_t whole = left > 0 ? int64_t(std::floor(left / epoch)) : 0;
    const double rest = left - double(whole) * epoch - end;  // for a shorter epoch after the whole ones
    const int64_t extra = rest > 0 ? int64_t(std::floor(rest / step)) : 0;
    if (whole == 0) return {.epochs = 1, .last_epoch_batches = std::clamp<int64_t>(extra, shortest, train_batches)};
    if (extra < shortest) return {.epochs = whole, .last_epoch_batches = train_batches};
    return {.epochs = whole + 1, .last_epoch_batches = std::min(extra, train_batches)};
}

void RunPace::add_epoch(double epoch_train_seconds, int64_t epoch_steps, double end_seconds) {
    train_seconds += epoch_train_seconds, steps += epoch_steps;
    epoch_end_seconds += end_seconds, ++epochs;
}

BudgetPace RunPace::mean() const {
    return {.step_seconds = steps > 0 ? train_seconds / double(steps) : 0.0,
            .epoch_end_seconds = epochs > 0 ? epoch_end_seconds / double(epochs) : 0.0};
}

BudgetFit refit_to_budget(double budget_seconds, double spent_seconds, const RunPace& pace, int64_t epochs_done,
                          int64_t train_batches) {
    const BudgetFit rest = fit_to_budget(budget_seconds, spent_seconds, pace.mean(), train_batches);
    return {.epochs = epochs_done + rest.epochs, .last_epoch_batches = rest.last_epoch_batches};
}

}  // namespace dn
