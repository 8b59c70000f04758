#include "train/time_budget.h"

#include "train/optimizer.h"

#include <algorithm>
#include <chrono>
#include <cmath>

namespace dn {

namespace {
using Clock = std::chrono::steady_clock;
double since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }
}  // namespace

StepTimes time_steps(DenseNet& net, Parameters& params, BatchLoader& train_loader, BatchLoader& test_loader,
                     DataParallel& replicas, int64_t steps) {
    Parameters saved(params.config());
    saved.copy_state_from(params);
    Adam stand_in(params.count(), AdamOptions{.lr = 0.0});  // lr 0: the weights do not move anyway
    StepTimes times;
    train_loader.start_epoch(1);
    const int64_t available = train_loader.batches_per_epoch();
    const int64_t untimed = std::min<int64_t>(2, available), timed = std::min<int64_t>(steps, available - untimed);
    Clock::time_point start = Clock::now();
    for (int64_t s = 0; s < untimed + timed; ++s) {
        if (s == untimed) start = Clock::now();
        const Batch* batch = train_loader.next();
        net.forward(batch->images.data(), batch->labels.data(), Mode::train);
        net.backward();
        replicas.finish_gradients();
        stand_in.step(params.values(), params.grads());
        replicas.share_running_stats();
        net.load_weights();
    }
    // With fewer than three batches an epoch, the untimed ones are all there is: time them instead.
    times.train_step_seconds = timed > 0 ? since(start) / double(timed) : since(start) / double(std::max<int64_t>(untimed, 1));
    test_loader.start_epoch(1);
    const int64_t tests = std::min<int64_t>(3, test_loader.batches_per_epoch());
    start = Clock::now();
    for (int64_t t = 0; t < tests; ++t) {
        const Batch* batch = test_loader.next();
        net.forward(batch->images.data(), batch->labels.data(), Mode::eval);
    }
    times.test_batch_seconds = tests > 0 ? since(start) / double(tests) : 0.0;
    params.copy_state_from(saved);
    net.load_weights();
    return times;
}

int64_t epochs_within(double budget_seconds, double spent_seconds, const StepTimes& times, int64_t train_batches,
                      int64_t test_batches) {
    const double epoch = double(train_batches) * times.train_step_seconds + double(test_batches) * times.test_batch_seconds;
    const double left = 0.97 * budget_seconds - spent_seconds;
    return std::max<int64_t>(1, int64_t(std::floor(left / epoch)));
}

}  // namespace dn
