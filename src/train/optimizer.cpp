#include "train/optimizer.h"

#include "io/safetensors.h"
#include "ops/profiler.h"

#include <cmath>
#include <cstring>
#include <stdexcept>

namespace dn {

namespace {
struct NamedState {
    const char* suffix;
    std::vector<float>* values;
};

void save_state(const Parameters& params, const std::string& path, const std::vector<NamedState>& states,
                const std::map<std::string, std::string>& metadata) {
    std::vector<SafeTensor> tensors;
    for (const auto& e : params.entries()) {
        if (e.role != TensorRole::parameter) continue;
        for (const auto& s : states)
            tensors.push_back({e.name + "." + s.suffix, "F32", e.shape, s.values->data() + e.offset,
                               size_t(e.numel()) * sizeof(float)});
    }
    write_safetensors(path, tensors, metadata);
}

SafetensorsFile load_state(const Parameters& params, const std::string& path, const std::vector<NamedState>& states,
                           const std::string& optimizer) {
    SafetensorsFile file(path);
    auto fail = [&](const std::string& why) { throw std::runtime_error("optimizer state '" + path + "': " + why); };
    auto kind = file.metadata().find("optimizer");
    if (kind == file.metadata().end() || kind->second != optimizer)
        fail("was not written by " + optimizer);
    for (const auto& e : params.entries()) {
        if (e.role != TensorRole::parameter) continue;
        for (const auto& s : states) {
            auto it = file.tensors().find(e.name + "." + s.suffix);
            if (it == file.tensors().end()) fail("missing '" + e.name + "." + s.suffix + "'");
            if (it->second.dtype != "F32" || it->second.shape != e.shape) fail("'" + e.name + "." + s.suffix + "' has the wrong shape or dtype");
            std::memcpy(s.values->data() + e.offset, it->second.data, it->second.bytes);
        }
    }
    return file;
}

}  // namespace

std::vector<DecayRange> decay_ranges(int64_t count, const std::vector<DecayExclusion>& excluded) {
    std::vector<DecayRange> ranges;
    int64_t at = 0;
    for (const DecayExclusion& e : excluded) {
        if (e.begin > at) ranges.push_back({at, e.begin, true});
        ranges.push_back({e.begin, e.end, false});
        at = e.end;
    }
    if (at < count) ranges.push_back({at, count, true});
    return ranges;
}

std::vector<DecayExclusion> no_decay_ranges(const Parameters& params) {
    std::vector<DecayExclusion> ranges;
    for (const TensorEntry& e : params.entries()) {
        if (e.role != TensorRole::parameter || e.shape.size() != 1) continue;
        if (!ranges.empty() && ranges.back().end == e.offset) ranges.back().end = e.offset + e.numel();  // weight, then bias
        else ranges.push_back({e.offset, e.offset + e.numel()});
    }
    return ranges;
}

AdamStepScalars adam_step_scalars(const AdamOptions& o, int64_t step, double weight_decay) {
    const double correction1 = 1.0 - std::pow(o.beta1, double(step));
    const bool decoupled = o.decay == WeightDecay::decoupled;
    return {.step_size = float(o.lr / correction1),
            .beta1 = float(o.beta1),
            .one_minus_beta1 = float(1.0 - o.beta1),
            .beta2 = float(o.beta2),
            .one_minus_beta2 = float(1.0 - o.beta2),
            .correction2_sqrt = float(std::sqrt(1.0 - std::pow(o.beta2, double(step)))),
            .eps = float(o.eps),
            .l2 = decoupled ? 0.0f : float(weight_decay),
            .shrink = decoupled ? float(1.0 - o.lr * weight_decay) : 1.0f};
}

Adam::Adam(int64_t count, const AdamOptions& options)
    : options_(options), exp_avg_(size_t(count), 0.0f), exp_avg_sq_(size_t(count), 0.0f),
      max_exp_avg_sq_(options.amsgrad ? size_t(count) : 0, 0.0f), ranges_(decay_ranges(count, {})) {}

void Adam::step(float* values, const float* grads) {
    // values, m and v are read and written, grads read (max_exp_avg_sq too with amsgrad).
    PhaseTimer timer(Phase::optimizer, 0.0, 4.0 * (options_.amsgrad ? 9.0 : 7.0) * double(exp_avg_.size()));
    ++steps_;
    // One parallel region; the ranges are disjoint, so no thread waits at the end of one.
#pragma omp parallel
    for (const DecayRange& r : ranges_) update(values, grads, r.begin, r.end, r.decayed ? options_.weight_decay : 0.0);
}

// Called by every thread of the parallel region in step(): the loop is shared among them.
void Adam::update(float* values, const float* grads, int64_t begin, int64_t end, double weight_decay) {
    const AdamStepScalars k = adam_step_scalars(options_, steps_, weight_decay);
    float* m = exp_avg_.data();
    float* v = exp_avg_sq_.data();
    // Two loops, each with vmax known to the compiler: with a null test on it inside one loop, GCC's
    // code for this step ran 4x slower (measured: 15 ms against 4 for densenet121's 7M values).
    if (options_.amsgrad) {
        float* vmax = max_exp_avg_sq_.data();
#pragma omp for simd schedule(static) nowait
        for (int64_t i = begin; i < end; ++i) adam_element(values, m, v, vmax, grads, i, k);
    } else {
#pragma omp for simd schedule(static) nowait
        for (int64_t i = begin; i < end; ++i) adam_element(values, m, v, nullptr, grads, i, k);
    }
}

void Adam::save(const Parameters& params, const std::string& path) const {
    auto* self = const_cast<Adam*>(this);
    std::vector<NamedState> states{{"exp_avg", &self->exp_avg_}, {"exp_avg_sq", &self->exp_avg_sq_}};
    if (options_.amsgrad) states.push_back({"max_exp_avg_sq", &self->max_exp_avg_sq_});
    save_state(params, path, states,
               {{"optimizer", name()}, {"step", std::to_string(steps_)}, {"lr", std::to_string(options_.lr)}});
}

void Adam::load(const Parameters& params, const std::string& path) {
    std::vector<NamedState> states{{"exp_avg", &exp_avg_}, {"exp_avg_sq", &exp_avg_sq_}};
    if (options_.amsgrad) states.push_back({"max_exp_avg_sq", &max_exp_avg_sq_});
    SafetensorsFile file = load_state(params, path, states, name());
    steps_ = std::stoll(file.metadata().at("step"));
}

SgdStepScalars sgd_step_scalars(const SgdOptions& o, int64_t step, double weight_decay) {
    return {.lr = float(o.lr), .weight_decay = float(weight_decay), .momentum = float(o.momentum),
            .one_minus_dampening = float(1.0 - o.dampening), .use_momentum = o.momentum != 0.0,
            .nesterov = o.nesterov, .first = step == 1};
}

Sgd::Sgd(int64_t count, const SgdOptions& options)
    : options_(options), count_(count), momentum_buffer_(options.momentum != 0.0 ? size_t(count) : 0, 0.0f),
      ranges_(decay_ranges(count, {})) {
    if (options.nesterov && (options.momentum <= 0.0 || options.dampening != 0.0))
        throw std::invalid_argument("Nesterov momentum requires a momentum and zero dampening");
}

void Sgd::set_momentum(double momentum) {
    if (momentum != 0.0 && momentum_buffer_.empty())
        throw std::logic_error("SGD was made without momentum; give it one to cycle it");
    options_.momentum = momentum;
}

void Sgd::step(float* values, const float* grads) {
    PhaseTimer timer(Phase::optimizer, 0.0, 4.0 * (options_.momentum != 0.0 ? 5.0 : 3.0) * double(count_));
    ++steps_;
#pragma omp parallel
    for (const DecayRange& r : ranges_) update(values, grads, r.begin, r.end, r.decayed ? options_.weight_decay : 0.0);
}

void Sgd::update(float* values, const float* grads, int64_t begin, int64_t end, double weight_decay) {
    const SgdStepScalars k = sgd_step_scalars(options_, steps_, weight_decay);
    float* buf = momentum_buffer_.data();
#pragma omp for simd schedule(static) nowait
    for (int64_t i = begin; i < end; ++i) sgd_element(values, buf, grads, i, k);
}

void Sgd::save(const Parameters& params, const std::string& path) const {
    auto* self = const_cast<Sgd*>(this);
    std::vector<NamedState> states;
    if (options_.momentum != 0.0) states.push_back({"momentum_buffer", &self->momentum_buffer_});
    save_state(params, path, states, {{"optimizer", "sgd"}, {"step", std::to_string(steps_)}});
}

void Sgd::load(const Parameters& params, const std::string& path) {
    std::vector<NamedState> states;
    if (options_.momentum != 0.0) states.push_back({"momentum_buffer", &momentum_buffer_});
    SafetensorsFile file = load_state(params, path, states, "sgd");
    steps_ = std::stoll(file.metadata().at("step"));
}

}  // namespace dn
