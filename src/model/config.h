// defines: DenseNetConfig, Stem, densenet_preset, transition_channels, block_input_size, min_input_size, validate,
//          same_architecture
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace dn {

// imagenet: torchvision's conv0 7x7/2 + norm0 + relu0 + 3x3/2 max-pool.
// small_inputs: one 3x3/1 convolution, as in the DenseNet paper's CIFAR models and in the
// memory-efficient DenseNet of Pleiss et al. (its small_inputs=True).
enum class Stem { imagenet, small_inputs };

struct DenseNetConfig {
    std::string arch = "densenet121";
    int64_t growth_rate = 32;
    std::vector<int64_t> block_config{6, 12, 24, 16};
    int64_t num_init_features = 64;
    int64_t bn_size = 4;
    double compression = 0.5;
    int64_t num_classes = 1000;
    int64_t in_channels = 3;
    Stem stem = Stem::imagenet;

    int64_t bottleneck_channels() const { return bn_size * growth_rate; }
};

// densenet121, densenet161, densenet169, densenet201 as torchvision builds them; and the DenseNet
// paper's networks for small images, densenet-bc-L-k (depth L, growth rate k): the small-inputs
// stem (one 3x3 convolution to 2k channels), three blocks of (L - 4) / 6 layers, bottlenecks of 4k,
// compression 0.5 (densenet-bc-100-12 is the paper's 0.8M-parameter CIFAR model). Throws on others.
DenseNetConfig densenet_preset(const std::string& name, int64_t num_classes);

// Output channels of the transition after a block with `channels` outputs.
int64_t transition_channels(const DenseNetConfig& cfg, int64_t channels);

// Height (or width) of dense block `block`'s feature maps for an input of this size.
int64_t block_input_size(const DenseNetConfig& cfg, int64_t input_size, size_t block);

// The smallest square input whose last dense block is at least 1x1.
int64_t min_input_size(const DenseNetConfig& cfg);

// Throws std::invalid_argument with a one-line reason.
void validate(const DenseNetConfig& cfg);

// The same layers with the same shapes, whatever the name and the number of classes: a checkpoint
// of one loads into the other, the classifier aside.
bool same_architecture(const DenseNetConfig& a, const DenseNetConfig& b);

}  // namespace dn
