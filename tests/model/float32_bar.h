// defines: fixture_floats, Float32Runs, float32_runs, float32_error, adam_strict_mask, kept: the
//          parity tests' bar per tensor (how far PyTorch's own float32 results lie from its float64
//          one) and their rule for Adam's noise elements, without
//          GoogleTest, so that the GPU parity check (a plain program) holds each tensor to the same
//          bar as the CPU's
#pragma once
#include "io/safetensors.h"
#include "test_util.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

namespace dn::test {

// A make_reference.py fixture's F32 tensor, copied out.
inline std::vector<float> fixture_floats(const SafetensorsFile& file, const std::string& name) {
    const auto& t = file.tensors().at(name);
    if (t.dtype != "F32") throw std::runtime_error("fixture tensor " + name + " is " + t.dtype + ", not F32");
    std::vector<float> v(t.bytes / 4);
    std::memcpy(v.data(), t.data, t.bytes);
    return v;
}

// PyTorch's two float32 results for a tensor: as users run it, and the farthest from float64 of
// runs with rounding-level noise on every convolution's output (make_reference.py's CONV_NOISE).
// An engine that sums in another order (oneDNN's Winograd, cuDNN's algorithms) rounds as a noisy
// run does, so the bar must allow both.
struct Float32Runs {
    std::vector<float> plain, noisy;
};
inline Float32Runs float32_runs(const SafetensorsFile& file, const std::string& name) {
    return {fixture_floats(file, name), fixture_floats(file, "noisy." + name)};
}

// The larger distance of the two runs from `exact`, each transformed by `as_compared` (a selection
// of elements, or a displacement from the initial weights) first. A parity test's bar is twice
// this, or its tolerance where that is larger: no test can ask float32 for more than the
// computation's conditioning allows.
template <class Transform>
double float32_error(const Float32Runs& runs, const std::vector<float>& exact, Transform as_compared) {
    double worst = 0.0;
    for (const std::vector<float>* run : {&runs.plain, &runs.noisy}) {
        const std::vector<float> v = as_compared(*run);
        worst = std::max(worst, relative_error(v.data(), exact.data(), int64_t(exact.size())));
    }
    return worst;
}
inline double float32_error(const Float32Runs& runs, const std::vector<float>& exact) {
    return float32_error(runs, exact, [](const std::vector<float>& v) { return v; });
}

// Adam moves every weight by about lr per step whatever its gradient's size, so where a gradient is
// at rounding-noise level its step's sign is noise too (two PyTorch runs disagree there). An
// element whose exact first gradient is at least 1e-3 of its tensor's RMS is determined by the
// math, and true here: compared strictly. The rest are held only to Adam's bound (2 lr per step).
inline std::vector<bool> adam_strict_mask(const std::vector<float>& exact_first_gradient) {
    double rms = 0.0;
    for (float g : exact_first_gradient) rms += double(g) * g;
    rms = std::sqrt(rms / double(exact_first_gradient.size()));
    std::vector<bool> strict(exact_first_gradient.size());
    for (size_t j = 0; j < strict.size(); ++j) strict[j] = std::abs(exact_first_gradient[j]) >= 1e-3 * rms;
    return strict;
}

// values[j] - base[j] (base: none, or a displacement's start) for the j that `mask` keeps.
inline std::vector<float> kept(const std::vector<float>& values, const std::vector<bool>& mask,
                               const float* base = nullptr) {
    std::vector<float> v;
    for (size_t j = 0; j < mask.size(); ++j)
        if (mask[j]) v.push_back(values[j] - (base ? base[j] : 0.0f));
    return v;
}

}  // namespace dn::test
