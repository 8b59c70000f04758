// defines: torch_repr (the text PyTorch's print(net) gives for the torchvision DenseNet of a config)
#pragma once
#include "model/config.h"

#include <string>

namespace dn {

// Line for line what print(torchvision.models.densenet121(num_classes=K)) prints, newline-ended;
// the small-input stem prints as the test's reference model has it: conv0 alone, 3x3/1.
std::string torch_repr(const DenseNetConfig& cfg);

}  // namespace dn
