#include "model/init.h"

#include <cmath>
#include <random>

namespace dn {

void init_parameters(Parameters& params, uint64_t seed) {
    std::mt19937_64 rng(seed);
    auto kaiming_normal = [&](const ConvParams& c) {
        std::normal_distribution<float> normal(0.0f, std::sqrt(2.0f / float(c.in_channels * c.kernel * c.kernel)));
        for (int64_t i = 0; i < c.out_channels * c.in_channels * c.kernel * c.kernel; ++i) c.weight[i] = normal(rng);
    };
    auto reset = [](const BatchNormParams& bn) {
        for (int64_t j = 0; j < bn.channels; ++j) {
            bn.weight[j] = 1.0f, bn.bias[j] = 0.0f;
            bn.running_mean[j] = 0.0f, bn.running_var[j] = 1.0f;
        }
        *bn.num_batches_tracked = 0;
    };

    kaiming_normal(params.conv0);
    if (params.norm0) reset(*params.norm0);
    for (const auto& block : params.blocks)
        for (const auto& l : block) {
            reset(l.norm1), kaiming_normal(l.conv1), reset(l.norm2), kaiming_normal(l.conv2);
        }
    for (const auto& t : params.transitions) reset(t.norm), kaiming_normal(t.conv);
    reset(params.norm5);
    const LinearParams& fc = params.classifier;
    const float bound = 1.0f / std::sqrt(float(fc.in_features));
    std::uniform_real_distribution<float> uniform(-bound, bound);
    for (int64_t i = 0; i < fc.out_features * fc.in_features; ++i) fc.weight[i] = uniform(rng);
    for (int64_t o = 0; o < fc.out_features; ++o) fc.bias[o] = 0.0f;
}

}  // namespace dn
