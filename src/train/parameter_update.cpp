#include "train/parameter_update.h"

#include <cmath>

namespace dn {

ParameterUpdate::ParameterUpdate(Optimizer& optimizer, UpdateRules rules) : optimizer_(optimizer), rules_(rules) {}

double ParameterUpdate::schedule_next_step() {
    if (rules_.schedule) {
        const StepHyperparameters h = rules_.schedule->at(optimizer_.steps());
        optimizer_.set_learning_rate(h.lr);
        if (h.momentum) optimizer_.set_momentum(*h.momentum);
    }
    return optimizer_.learning_rate();
}

AppliedUpdate ParameterUpdate::apply(Parameters& params) {
    AppliedUpdate applied;
    applied.learning_rate = schedule_next_step();
    if (rules_.max_grad_norm > 0.0) applied.grad_norm = clip_grad_norm(params, rules_.max_grad_norm);
    optimizer_.step(params.values(), params.grads());
    applied.step = optimizer_.steps();
    return applied;
}

void ParameterUpdate::fold_into_average(const Parameters& params) {
    if (rules_.average) rules_.average->update(params);
}

double clip_grad_norm(Parameters& params, double max_norm) {
    // torch.norm of each gradient (a float), then the norm of those: accumulated here in double.
    double sum_of_squares = 0.0;
    const float* grads = params.grads();
    for (const TensorEntry& e : params.entries()) {
        if (e.role != TensorRole::parameter) continue;
        double s = 0.0;
        for (int64_t i = e.offset; i < e.offset + e.numel(); ++i) s += double(grads[i]) * double(grads[i]);
        const float norm = float(std::sqrt(s));
        sum_of_squares += double(norm) * double(norm);
    }
    const float total = float(std::sqrt(sum_of_squares));
    const float coefficient = float(max_norm) / (total + 1e-6f);
    if (coefficient < 1.0f) {
        float* g = params.grads();
        const int64_t n = params.count();
#pragma omp parallel for simd schedule(static)
        for (int64_t i = 0; i < n; ++i) g[i] *= coefficient;
    }
    return double(total);
}

}  // namespace dn
