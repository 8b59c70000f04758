// defines: group_digits, bytes_text, print_layer_table: what summary and complexity print alike
#pragma once
#include "model/layers.h"

#include <cstdint>
#include <string>
#include <vector>

namespace dn {

std::string group_digits(int64_t n);  // 2834161664 -> "2,834,161,664"
std::string bytes_text(int64_t bytes);  // "983,040,000 B (937.5 MiB)"

// One row per step of the forward: name, type, output shape, parameters, MACs (and FLOPs), then
// the totals. A step forward() runs itself (not a module) has its functional name as its type.
void print_layer_table(const std::vector<Layer>& layers, bool with_flops);

}  // namespace dn
