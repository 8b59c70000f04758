// defines: copy_channels
#pragma once
#include "tensor/feature_map.h"

namespace dn {

// dst = src, pixel by pixel, for views of the same shape with any pixel strides, converting
// between f32 and bf16 where their types differ. This is how a layer's new channels are put into
// its dense block's buffer (once), and how their gradient is read back out as the dense operand
// oneDNN needs (in bf16 precision, converted to bf16 on the way: no separate pass).
void copy_channels(const FeatureMap& dst, const FeatureMap& src);

}  // namespace dn
