#include "train/trainer.h"

#include "io/progress_bar.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>

namespace dn {

EpochEnd train_epoch(StepEngine& engine, BatchLoader& loader, const EpochSpan& span, EpochTotals& totals,
                     StopRequest& stop, DataParallel& replicas, const StepObserver& on_step) {
    using Clock = std::chrono::steady_clock;
    const int64_t B = replicas.local_batch(), K = engine.classes(), global_batch = replicas.global_batch();
    const bool alone = replicas.communicator().size() == 1;
    const double loader_wait_before = loader.wait_seconds(), epoch_wait_before = totals.data_wait_seconds;
    const double loader_busy_before = loader.busy_seconds(), epoch_busy_before = totals.loader_busy_seconds;
    const int64_t seen_before = totals.seen;
    const int64_t batches = std::min(span.batches, loader.batches_per_epoch());
    ProgressBar bar("epoch " + std::to_string(span.epoch) + "/" + std::to_string(span.epochs),
                    batches == loader.batches_per_epoch() ? loader.images_per_epoch() : batches * global_batch, "img");
    loader.start_epoch(span.epoch, totals.next_batch);
    auto last = Clock::now();
    // A stop asked of one process (Ctrl-C reaches each at its own moment) is agreed on in the next
    // step's sums, so that all stop after the same step.
    bool stop_agreed = alone && stop.interrupted && stop.interrupted->load();
    // An epoch whose last batch is trained is completed (and tested), even if a stop comes then.
    while (totals.next_batch < batches) {
        if (stop_agreed || (stop.max_steps > 0 && stop.steps_taken >= stop.max_steps)) {
            bar.finish();
            return EpochEnd::stopped;
        }
        const Batch* batch = loader.next();
        if (!batch) break;
        const float loss = engine.forward(batch->images.data(), batch->labels.data());
        // This process's shard, then the global batch's: loss sum, correct, stop requests.
        double step[3] = {double(loss) * double(B), 0.0, stop.interrupted && stop.interrupted->load() ? 1.0 : 0.0};
        for (int64_t i = 0; i < B; ++i) {
            const float* z = engine.logits() + i * K;
            step[1] += (std::max_element(z, z + K) - z) == batch->labels[size_t(i)];
        }
        replicas.communicator().sum(step, 3);
        if (!std::isfinite(step[0])) {
            bar.finish();
            return EpochEnd::diverged;
        }
        const AppliedUpdate applied = engine.backward_and_update();
        ++stop.steps_taken;
        ++totals.next_batch;
        totals.loss_sum += step[0];
        totals.correct += int64_t(step[1]);
        totals.seen += global_batch;
        totals.last_learning_rate = applied.learning_rate;
        stop_agreed = step[2] > 0.0;
        const auto now = Clock::now();
        const double step_seconds = std::chrono::duration<double>(now - last).count();
        totals.seconds += step_seconds;
        last = now;
        totals.data_wait_seconds = epoch_wait_before + loader.wait_seconds() - loader_wait_before;
        totals.loader_busy_seconds = epoch_busy_before + loader.busy_seconds() - loader_busy_before;
        if (on_step)
            on_step({.step = applied.step, .loss = step[0] / double(global_batch),
                     .learning_rate = applied.learning_rate,
                     .images_per_second = double(global_batch) / step_seconds});
        char note[96];
        std::snprintf(note, sizeof note, "loss %.4f", totals.loss_sum / double(totals.seen));
        bar.update(totals.seen, note, seen_before);
    }
    bar.finish();
    return EpochEnd::completed;
}

}  // namespace dn
