// defines: TestedWeights, WeightAverage (an exponential moving average of a network's weights and
//          batch-norm statistics, as torch.optim.swa_utils.AveragedModel with an EMA avg_fn and
//          use_buffers)
#pragma once
#include "model/parameters.h"

#include <cstdint>

namespace dn {

// Which weights a run's tests measure (and best.safetensors therefore keeps): the trained ones, or
// their average (--test-ema).
enum class TestedWeights { trained, average };

// After every optimizer step, update() folds the model in: the first update copies it, each later
// one computes decay * average + (1 - decay) * model for every parameter, running statistic and
// batch count, in float as PyTorch computes
//   AveragedModel(model, avg_fn=lambda a, p, n: decay * a + (1 - decay) * p, use_buffers=True)
// (so a batch count, an integer, is truncated back to one, as copy_ does).
class WeightAverage {
public:
    WeightAverage(const DenseNetConfig& cfg, double decay);

    void update(const Parameters& model);
    // update()'s part that is not the floats: the batch counts, and the count of updates. For an
    // engine that blends the floats itself (the GPU's). Returns true for the first update, which
    // copies the model's floats instead of blending them.
    bool update_counts(const Parameters& model);
    float keep() const { return float(decay_); }         // decay, as PyTorch rounds it
    float take() const { return float(1.0 - decay_); }  // 1 - decay
    const Parameters& averaged() const { return average_; }
    Parameters& averaged() { return average_; }
    double decay() const { return decay_; }
    // AveragedModel's n_averaged: saved with the average, since the first update differs.
    int64_t updates() const { return updates_; }
    void set_updates(int64_t updates) { updates_ = updates; }

private:
    Parameters average_;
    double decay_;
    int64_t updates_ = 0;
};

}  // namespace dn
