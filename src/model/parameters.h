// defines: Parameters (every weight, gradient and BN buffer of a DenseNet, in one allocation each,
//          named and ordered as torchvision's state_dict), and the per-layer views into them
#pragma once
#include "model/config.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace dn {

enum class TensorRole {
    parameter,     // float, trained; has a gradient at the same offset
    running_stat,  // float buffer: BN running_mean / running_var
    batch_count,   // int64 buffer: BN num_batches_tracked
};

struct TensorEntry {
    std::string name;            // torchvision's state_dict key
    std::vector<int64_t> shape;  // PyTorch's shape: OIHW for convolutions, (O,I) for the classifier
    TensorRole role;
    int64_t offset;              // elements from the start of the storage for its role

    int64_t numel() const;
};

struct BatchNormParams {
    int64_t channels = 0;
    float *weight = nullptr, *bias = nullptr;      // (C) gamma and beta
    float *dweight = nullptr, *dbias = nullptr;    // (C)
    float *running_mean = nullptr, *running_var = nullptr;  // (C)
    int64_t* num_batches_tracked = nullptr;
};

struct ConvParams {
    int64_t out_channels = 0, in_channels = 0, kernel = 0;
    float *weight = nullptr, *dweight = nullptr;  // (O,I,K,K)
};

struct DenseLayerParams {
    BatchNormParams norm1;
    ConvParams conv1;  // 1x1, in -> bn_size * growth
    BatchNormParams norm2;
    ConvParams conv2;  // 3x3, bn_size * growth -> growth
};

struct TransitionParams {
    BatchNormParams norm;
    ConvParams conv;  // 1x1
};

struct LinearParams {
    int64_t out_features = 0, in_features = 0;
    float *weight = nullptr, *bias = nullptr;    // (O,I), (O)
    float *dweight = nullptr, *dbias = nullptr;
};

class Parameters {
public:
    explicit Parameters(const DenseNetConfig& cfg);
    Parameters(const Parameters&) = delete;
    Parameters& operator=(const Parameters&) = delete;

    const DenseNetConfig& config() const { return cfg_; }
    const std::vector<TensorEntry>& entries() const { return entries_; }  // state_dict order
    const TensorEntry* find(const std::string& name) const;

    // All trainable values and their gradients, flat: what the optimizers walk over.
    float* values() { return values_.data(); }
    float* grads() { return grads_.data(); }
    const float* values() const { return values_.data(); }
    const float* grads() const { return grads_.data(); }
    int64_t count() const { return int64_t(values_.size()); }  // 7,978,856 for densenet121/1000
    // Every BN running_mean and running_var, flat (what a device copy mirrors).
    float* running_stats() { return running_.data(); }
    const float* running_stats() const { return running_.data(); }
    int64_t running_count() const { return int64_t(running_.size()); }

    // The weights, running statistics and batch counts of another Parameters of the same network
    // (gradients stay as they are): copied, or exchanged element by element (every view into
    // either stays valid). Throws std::invalid_argument for another network.
    void copy_state_from(const Parameters& other);
    void swap_state(Parameters& other);

    // The storage an entry lives in, as raw bytes (float or int64 by its role).
    void* data(const TensorEntry& e);
    const void* data(const TensorEntry& e) const;

    ConvParams conv0;
    std::optional<BatchNormParams> norm0;             // imagenet stem only
    std::vector<std::vector<DenseLayerParams>> blocks;  // [block][layer]
    std::vector<TransitionParams> transitions;        // after every block but the last
    BatchNormParams norm5;
    LinearParams classifier;

private:
    struct Builder;
    DenseNetConfig cfg_;
    std::vector<TensorEntry> entries_;
    std::vector<float> values_, grads_, running_;
    std::vector<int64_t> batch_counts_;
};

}  // namespace dn
