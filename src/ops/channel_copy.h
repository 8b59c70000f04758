// defines: copy_channels
#pragma once
#include "tensor/feature_map.h"

namespace dn {

// dst = src, pixel by pixel, for views of the same shape with any pixel strides. This is how a
// layer's new channels are put into its dense block's buffer (once), and how their gradient is
// read back out as the dense operand oneDNN needs.
void copy_channels(const FeatureMap& dst, const FeatureMap& src);

}  // namespace dn
