// defines: AdamOptions, Adam, SgdOptions, Sgd: PyTorch's torch.optim.Adam and SGD, step for step
#pragma once
#include "model/parameters.h"

#include <map>
#include <span>
#include <string>
#include <vector>

namespace dn {

// Hyper-parameters are doubles, as Python's floats: PyTorch derives its float32 scalars from them.
struct AdamOptions {
    double lr = 1e-3;
    double beta1 = 0.9, beta2 = 0.999;
    double eps = 1e-8;
    double weight_decay = 0.0;  // L2, added to the gradient (Adam, not AdamW)
    bool amsgrad = false;
};

struct SgdOptions {
    double lr = 1e-2;
    double momentum = 0.0;
    double dampening = 0.0;
    double weight_decay = 0.0;
    bool nesterov = false;
};

// What the trainer needs of any optimizer.
class Optimizer {
public:
    virtual ~Optimizer() = default;
    virtual void step(float* values, const float* grads) = 0;
    virtual int64_t steps() const = 0;
    virtual double learning_rate() const = 0;  // what the next step uses (for the logs)
    virtual void save(const Parameters& params, const std::string& path) const = 0;
    virtual void load(const Parameters& params, const std::string& path) = 0;
    // The state as flat arrays, and the step count: what data-parallel processes copy from rank 0
    // after it resumes a run.
    virtual std::vector<std::span<float>> state_arrays() = 0;
    virtual void set_steps(int64_t steps) = 0;
};

// Both walk the flat parameter and gradient arrays of Parameters; their state has the same layout,
// so a parameter's state is found at its own offset. save() names it after the parameter
// ("features.conv0.weight.exp_avg") in a safetensors file beside the checkpoint.
class Adam : public Optimizer {
public:
    Adam(int64_t count, const AdamOptions& options);
    void step(float* values, const float* grads) override;

    int64_t steps() const override { return steps_; }
    double learning_rate() const override { return options_.lr; }
    AdamOptions& options() { return options_; }
    void save(const Parameters& params, const std::string& path) const override;
    void load(const Parameters& params, const std::string& path) override;
    std::vector<std::span<float>> state_arrays() override { return {exp_avg_, exp_avg_sq_, max_exp_avg_sq_}; }
    void set_steps(int64_t steps) override { steps_ = steps; }

private:
    AdamOptions options_;
    int64_t steps_ = 0;
    std::vector<float> exp_avg_, exp_avg_sq_, max_exp_avg_sq_;
};

class Sgd : public Optimizer {
public:
    Sgd(int64_t count, const SgdOptions& options);
    void step(float* values, const float* grads) override;

    int64_t steps() const override { return steps_; }
    double learning_rate() const override { return options_.lr; }
    void save(const Parameters& params, const std::string& path) const override;
    void load(const Parameters& params, const std::string& path) override;
    std::vector<std::span<float>> state_arrays() override { return {momentum_buffer_}; }
    void set_steps(int64_t steps) override { steps_ = steps; }

private:
    SgdOptions options_;
    int64_t count_;
    int64_t steps_ = 0;
    std::vector<float> momentum_buffer_;
};

}  // namespace dn
