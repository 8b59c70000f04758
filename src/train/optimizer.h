// defines: WeightDecay, OptimizerKind, AdamOptions, AdamStepScalars, adam_step_scalars, adam_element, Adam,
//          SgdOptions, SgdStepScalars, sgd_step_scalars, sgd_element, Sgd, DecayExclusion, no_decay_ranges,
//          DecayRange, decay_ranges: PyTorch's torch.optim.Adam, AdamW and SGD, step for step
#pragma once
#include "model/parameters.h"

#include <cmath>
#include <map>
#include <span>
#include <string>
#include <vector>

// The per-element updates below are compiled for the GPU too (cuda/optimizer_step.cu), so that
// both engines run one formula.
#if defined(__CUDACC__)
#define DN_HOST_DEVICE __host__ __device__
#else
#define DN_HOST_DEVICE
#endif

namespace dn {

// l2: added to the gradient (torch.optim.Adam's and SGD's weight_decay); decoupled: the weights
// shrink by lr * weight_decay before the update (torch.optim.AdamW).
enum class WeightDecay { l2, decoupled };

// Hyper-parameters are doubles, as Python's floats: PyTorch derives its float32 scalars from them.
struct AdamOptions {
    double lr = 1e-3;
    double beta1 = 0.9, beta2 = 0.999;
    double eps = 1e-8;
    double weight_decay = 0.0;
    WeightDecay decay = WeightDecay::l2;  // decoupled: AdamW
    bool amsgrad = false;
};

// One Adam step's scalars over a range of the flat array, as torch.optim.Adam and AdamW
// (single-tensor) derive them: in double from the options, applied in float. Both engines' Adam
// use them (the GPU's in cuda/optimizer_step.h).
struct AdamStepScalars {
    float step_size, beta1, one_minus_beta1, beta2, one_minus_beta2, correction2_sqrt, eps;
    float l2;      // Adam's weight decay, added to the gradient (0 for AdamW)
    float shrink;  // AdamW's param.mul_(1 - lr * weight_decay) (1 for Adam)
};
// step counts from 1; weight_decay is the range's (the options', or 0 where it is excluded).
AdamStepScalars adam_step_scalars(const AdamOptions& options, int64_t step, double weight_decay);

// Element i of an Adam step, in PyTorch's order of operations; vmax (max_exp_avg_sq) is nullptr
// without amsgrad.
DN_HOST_DEVICE inline void adam_element(float* values, float* m, float* v, float* vmax, const float* grads, int64_t i,
                                        AdamStepScalars k) {
    float g = grads[i];
    if (k.l2 != 0.0f) g += k.l2 * values[i];
    if (k.shrink != 1.0f) values[i] *= k.shrink;
    m[i] = m[i] * k.beta1 + k.one_minus_beta1 * g;
    v[i] = v[i] * k.beta2 + k.one_minus_beta2 * g * g;
    float second = v[i];
    if (vmax) {
        vmax[i] = vmax[i] > v[i] ? vmax[i] : v[i];
        second = vmax[i];
    }
    const float denom = sqrtf(second) / k.correction2_sqrt + k.eps;
    values[i] += -k.step_size * (m[i] / denom);
}

struct SgdOptions {
    double lr = 1e-2;
    double momentum = 0.0;
    double dampening = 0.0;
    double weight_decay = 0.0;
    bool nesterov = false;
};

// One SGD step's scalars over a range, as torch.optim.SGD applies them (in float), for both engines.
struct SgdStepScalars {
    float lr, weight_decay, momentum, one_minus_dampening;
    bool use_momentum, nesterov;
    bool first;  // the first step: the momentum buffer starts as a copy of the gradient, undampened
};
SgdStepScalars sgd_step_scalars(const SgdOptions& options, int64_t step, double weight_decay);

// Element i of an SGD step; buf (the momentum buffer) is read only with momentum.
DN_HOST_DEVICE inline void sgd_element(float* values, float* buf, const float* grads, int64_t i,
                                       SgdStepScalars k) {
    float d = grads[i];
    if (k.weight_decay != 0.0f) d += k.weight_decay * values[i];
    if (k.use_momentum) {
        // PyTorch starts the buffer as a copy of the first gradient, without dampening.
        buf[i] = k.first ? d : buf[i] * k.momentum + k.one_minus_dampening * d;
        d = k.nesterov ? d + k.momentum * buf[i] : buf[i];
    }
    values[i] += -k.lr * d;
}

// Ranges [begin, end) of the flat parameter array that get no weight decay, in increasing order:
// PyTorch's second param group {"params": ..., "weight_decay": 0}.
struct DecayExclusion {
    int64_t begin = 0, end = 0;
};
// The ranges of every 1-dimensional parameter: batch norm's weights and biases and the classifier's
// bias (the usual "no decay for BN and bias" group, timm's rule of ndim <= 1).
std::vector<DecayExclusion> no_decay_ranges(const Parameters& params);

// The flat array of count values cut into the ranges an update walks, in order, each with or
// without weight decay: made once, when the exclusions are set, not at every step.
struct DecayRange {
    int64_t begin = 0, end = 0;
    bool decayed = true;
};
std::vector<DecayRange> decay_ranges(int64_t count, const std::vector<DecayExclusion>& excluded);

// Which one: for an engine that steps the optimizer's state itself (the GPU's) from its options.
enum class OptimizerKind { adam, sgd };

// What the trainer needs of any optimizer.
class Optimizer {
public:
    virtual ~Optimizer() = default;
    virtual OptimizerKind kind() const = 0;
    virtual void step(float* values, const float* grads) = 0;
    virtual int64_t steps() const = 0;
    virtual double learning_rate() const = 0;  // what the next step uses (for the logs)
    // What a schedule changes between steps, as it writes param_groups: "lr", and "momentum" or
    // Adam's beta1 (OneCycleLR's momentum cycling).
    virtual void set_learning_rate(double lr) = 0;
    virtual void set_momentum(double momentum) = 0;
    // Parameters that get no weight decay (none unless set).
    virtual void exclude_from_decay(std::vector<DecayExclusion> ranges) = 0;
    // The ranges a step walks, each with or without decay (one, decayed, unless some are excluded).
    virtual const std::vector<DecayRange>& ranges() const = 0;
    virtual void save(const Parameters& params, const std::string& path) const = 0;
    virtual void load(const Parameters& params, const std::string& path) = 0;
    // The state as flat arrays, and the step count: what data-parallel processes copy from rank 0
    // after it resumes a run.
    virtual std::vector<std::span<float>> state_arrays() = 0;
    virtual void set_steps(int64_t steps) = 0;
};

// Both walk the flat parameter and gradient arrays of Parameters; their state has the same layout,
// so a parameter's state is found at its own offset. save() names it after the parameter
// ("features.conv0.weight.exp_avg") in a safetensors file beside the checkpoint, whose metadata
// says which optimizer wrote it ("adam", "adamw", "sgd").
class Adam : public Optimizer {
public:
    Adam(int64_t count, const AdamOptions& options);
    OptimizerKind kind() const override { return OptimizerKind::adam; }
    void step(float* values, const float* grads) override;

    int64_t steps() const override { return steps_; }
    double learning_rate() const override { return options_.lr; }
    void set_learning_rate(double lr) override { options_.lr = lr; }
    void set_momentum(double momentum) override { options_.beta1 = momentum; }
    void exclude_from_decay(std::vector<DecayExclusion> ranges) override {
        ranges_ = decay_ranges(int64_t(exp_avg_.size()), ranges);
    }
    const std::vector<DecayRange>& ranges() const override { return ranges_; }
    AdamOptions& options() { return options_; }
    const AdamOptions& options() const { return options_; }
    void save(const Parameters& params, const std::string& path) const override;
    void load(const Parameters& params, const std::string& path) override;
    std::vector<std::span<float>> state_arrays() override { return {exp_avg_, exp_avg_sq_, max_exp_avg_sq_}; }
    void set_steps(int64_t steps) override { steps_ = steps; }

private:
    const char* name() const { return options_.decay == WeightDecay::decoupled ? "adamw" : "adam"; }
    void update(float* values, const float* grads, int64_t begin, int64_t end, double weight_decay);

    AdamOptions options_;
    int64_t steps_ = 0;
    std::vector<float> exp_avg_, exp_avg_sq_, max_exp_avg_sq_;
    std::vector<DecayRange> ranges_;
};

class Sgd : public Optimizer {
public:
    Sgd(int64_t count, const SgdOptions& options);
    OptimizerKind kind() const override { return OptimizerKind::sgd; }
    void step(float* values, const float* grads) override;

    int64_t steps() const override { return steps_; }
    double learning_rate() const override { return options_.lr; }
    void set_learning_rate(double lr) override { options_.lr = lr; }
    // The buffer exists from the start where momentum may be set later (SgdOptions::momentum > 0).
    void set_momentum(double momentum) override;
    void exclude_from_decay(std::vector<DecayExclusion> ranges) override { ranges_ = decay_ranges(count_, ranges); }
    const std::vector<DecayRange>& ranges() const override { return ranges_; }
    const SgdOptions& options() const { return options_; }
    void save(const Parameters& params, const std::string& path) const override;
    void load(const Parameters& params, const std::string& path) override;
    std::vector<std::span<float>> state_arrays() override { return {momentum_buffer_}; }
    void set_steps(int64_t steps) override { steps_ = steps; }

private:
    void update(float* values, const float* grads, int64_t begin, int64_t end, double weight_decay);

    SgdOptions options_;
    int64_t count_;
    int64_t steps_ = 0;
    std::vector<float> momentum_buffer_;
    std::vector<DecayRange> ranges_;
};

}  // namespace dn
