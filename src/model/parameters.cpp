#include "model/parameters.h"

#include <algorithm>
#include <stdexcept>

namespace dn {

int64_t TensorEntry::numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
}

// Walks the architecture in torchvision's registration order. The first walk only counts; the
// second, after the storage is allocated, also points every view into it.
struct Parameters::Builder {
    Parameters& p;
    bool bind;
    int64_t n_values = 0, n_running = 0, n_counts = 0;

    float* parameter(const std::string& name, std::vector<int64_t> shape, float** grad) {
        TensorEntry e{name, std::move(shape), TensorRole::parameter, n_values};
        n_values += e.numel();
        if (bind) p.entries_.push_back(e);
        if (grad) *grad = bind ? p.grads_.data() + e.offset : nullptr;
        return bind ? p.values_.data() + e.offset : nullptr;
    }
    float* running(const std::string& name, int64_t channels) {
        TensorEntry e{name, {channels}, TensorRole::running_stat, n_running};
        n_running += channels;
        if (bind) p.entries_.push_back(e);
        return bind ? p.running_.data() + e.offset : nullptr;
    }
    int64_t* count(const std::string& name) {
        TensorEntry e{name, {}, TensorRole::batch_count, n_counts};
        n_counts += 1;
        if (bind) p.entries_.push_back(e);
        return bind ? p.batch_counts_.data() + e.offset : nullptr;
    }
    BatchNormParams batch_norm(const std::string& prefix, int64_t channels) {
        BatchNormParams bn;
        bn.channels = channels;
        bn.weight = parameter(prefix + ".weight", {channels}, &bn.dweight);
        bn.bias = parameter(prefix + ".bias", {channels}, &bn.dbias);
        bn.running_mean = running(prefix + ".running_mean", channels);
        bn.running_var = running(prefix + ".running_var", channels);
        bn.num_batches_tracked = count(prefix + ".num_batches_tracked");
        return bn;
    }
    ConvParams conv(const std::string& name, int64_t out, int64_t in, int64_t kernel) {
        ConvParams c{out, in, kernel, nullptr, nullptr};
        c.weight = parameter(name, {out, in, kernel, kernel}, &c.dweight);
        return c;
    }

    void walk() {
        const DenseNetConfig& cfg = p.cfg_;
        const int64_t k = cfg.growth_rate, bottleneck = cfg.bottleneck_channels();
        p.blocks.clear();
        p.transitions.clear();
        p.norm0.reset();
        p.conv0 = conv("features.conv0.weight", cfg.num_init_features, cfg.in_channels,
                       cfg.stem == Stem::imagenet ? 7 : 3);
        if (cfg.stem == Stem::imagenet) p.norm0 = batch_norm("features.norm0", cfg.num_init_features);

        int64_t channels = cfg.num_init_features;
        for (size_t b = 0; b < cfg.block_config.size(); ++b) {
            const std::string block = "features.denseblock" + std::to_string(b + 1);
            std::vector<DenseLayerParams> layers;
            for (int64_t i = 0; i < cfg.block_config[b]; ++i) {
                const std::string layer = block + ".denselayer" + std::to_string(i + 1);
                const int64_t in = channels + i * k;
                DenseLayerParams l;
                l.norm1 = batch_norm(layer + ".norm1", in);
                l.conv1 = conv(layer + ".conv1.weight", bottleneck, in, 1);
                l.norm2 = batch_norm(layer + ".norm2", bottleneck);
                l.conv2 = conv(layer + ".conv2.weight", k, bottleneck, 3);
                layers.push_back(l);
            }
            p.blocks.push_back(std::move(layers));
            channels += cfg.block_config[b] * k;
            if (b + 1 < cfg.block_config.size()) {
                const std::string t = "features.transition" + std::to_string(b + 1);
                const int64_t out = transition_channels(cfg, channels);
                p.transitions.push_back({batch_norm(t + ".norm", channels), conv(t + ".conv.weight", out, channels, 1)});
                channels = out;
            }
        }
        p.norm5 = batch_norm("features.norm5", channels);
        LinearParams& fc = p.classifier;
        fc.out_features = cfg.num_classes;
        fc.in_features = channels;
        fc.weight = parameter("classifier.weight", {cfg.num_classes, channels}, &fc.dweight);
        fc.bias = parameter("classifier.bias", {cfg.num_classes}, &fc.dbias);
    }
};

Parameters::Parameters(const DenseNetConfig& cfg) : cfg_(cfg) {
    validate(cfg);
    Builder counting{*this, false};
    counting.walk();
    values_.assign(size_t(counting.n_values), 0.0f);
    grads_.assign(size_t(counting.n_values), 0.0f);
    running_.assign(size_t(counting.n_running), 0.0f);
    batch_counts_.assign(size_t(counting.n_counts), 0);
    Builder binding{*this, true};
    binding.walk();
}

const TensorEntry* Parameters::find(const std::string& name) const {
    for (const auto& e : entries_)
        if (e.name == name) return &e;
    return nullptr;
}

void* Parameters::data(const TensorEntry& e) {
    switch (e.role) {
    case TensorRole::parameter: return values_.data() + e.offset;
    case TensorRole::running_stat: return running_.data() + e.offset;
    case TensorRole::batch_count: return batch_counts_.data() + e.offset;
    }
    return nullptr;
}

const void* Parameters::data(const TensorEntry& e) const { return const_cast<Parameters*>(this)->data(e); }

namespace {
void require_same_network(const std::vector<TensorEntry>& a, const std::vector<TensorEntry>& b) {
    const bool same = a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](const TensorEntry& x, const TensorEntry& y) {
        return x.name == y.name && x.shape == y.shape;
    });
    if (!same) throw std::invalid_argument("the two sets of parameters belong to different networks");
}
}  // namespace

void Parameters::copy_state_from(const Parameters& other) {
    require_same_network(entries_, other.entries_);
    // Copied into place, so that the views into this storage stay valid.
    std::copy(other.values_.begin(), other.values_.end(), values_.begin());
    std::copy(other.running_.begin(), other.running_.end(), running_.begin());
    std::copy(other.batch_counts_.begin(), other.batch_counts_.end(), batch_counts_.begin());
}

void Parameters::swap_state(Parameters& other) {
    require_same_network(entries_, other.entries_);
    std::swap_ranges(values_.begin(), values_.end(), other.values_.begin());
    std::swap_ranges(running_.begin(), running_.end(), other.running_.begin());
    std::swap_ranges(batch_counts_.begin(), batch_counts_.end(), other.batch_counts_.begin());
}

}  // namespace dn
