#include "train/weight_average.h"

#include <stdexcept>

namespace dn {

WeightAverage::WeightAverage(const DenseNetConfig& cfg, double decay) : average_(cfg), decay_(decay) {
    if (!(decay > 0.0 && decay < 1.0)) throw std::invalid_argument("the average's decay must be in (0, 1)");
}

void WeightAverage::update(const Parameters& model) {
    if (update_counts(model)) {
        average_.copy_state_from(model);
        return;
    }
    // decay * a and (1 - decay) * p, each a float tensor times a Python float (rounded to float),
    // and their sum: three roundings, as PyTorch's ops (this file is compiled without FMA
    // contraction, see src/plan.cmake).
    const float keep = this->keep(), take = this->take();
    auto blend = [&](float* a, const float* p, int64_t n) {
#pragma omp parallel for simd schedule(static)
        for (int64_t i = 0; i < n; ++i) a[i] = keep * a[i] + take * p[i];
    };
    blend(average_.values(), model.values(), model.count());
    blend(average_.running_stats(), model.running_stats(), model.running_count());
}

bool WeightAverage::update_counts(const Parameters& model) {
    if (updates_++ == 0) {
        for (const TensorEntry& e : model.entries())
            if (e.role == TensorRole::batch_count)
                *static_cast<int64_t*>(average_.data(e)) = *static_cast<const int64_t*>(model.data(e));
        return true;
    }
    const float keep = this->keep(), take = this->take();
    for (const TensorEntry& e : model.entries()) {
        if (e.role != TensorRole::batch_count) continue;
        auto* a = static_cast<int64_t*>(average_.data(e));
        const auto* p = static_cast<const int64_t*>(model.data(e));
        // An int64 tensor times a float is a float32 tensor. volatile: each product rounded on its
        // own, as PyTorch's two ops round them, not contracted into an FMA, whose single rounding
        // could put the sum on the other side of an integer.
        volatile float kept = keep * float(*a), taken = take * float(*p);
        *a = int64_t(kept + taken);
    }
    return false;
}

}  // namespace dn
