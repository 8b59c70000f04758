// defines: shape_text ("[64, 3, 7, 7]", as error messages and reports print a tensor's shape)
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace dn {

inline std::string shape_text(const std::vector<int64_t>& shape) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
}

}  // namespace dn
