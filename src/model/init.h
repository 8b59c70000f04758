// defines: init_parameters (torchvision's initialisation, from a seeded generator)
#pragma once
#include "model/parameters.h"

#include <cstdint>

namespace dn {

// As torchvision's DenseNet.__init__: kaiming_normal_ (fan_in, ReLU gain) for every convolution,
// BN weight 1 and bias 0, running mean 0 and variance 1; the classifier weight keeps nn.Linear's
// default, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and its bias is 0. The same seed gives the same
// weights; the generator is std::mt19937_64, not PyTorch's, so the values differ from torch's.
void init_parameters(Parameters& params, uint64_t seed);

}  // namespace dn
