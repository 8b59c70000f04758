// defines: LayerKind, Layer, describe_layers, layer_kind_name, total_macs, total_parameters
#pragma once
#include "model/config.h"

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace dn {

enum class LayerKind { conv, batch_norm, relu, max_pool, avg_pool, concat, adaptive_avg_pool, linear };

// One step of torchvision's DenseNet.forward, in the order it runs. Modules are what print(net)
// shows; the rest are the tensor operations forward() performs itself (each dense layer's and
// each block's torch.cat, and the head's F.relu and F.adaptive_avg_pool2d), listed because they
// create tensors too.
struct Layer {
    std::string name;  // a module's state_dict prefix ("features.denseblock1.denselayer1.conv1");
                       // an operation is named after the module whose forward() runs it, plus
                       // what it is ("features.denseblock1.denselayer1.cat", "relu")
    LayerKind kind;
    bool module = true;
    bool in_place = false;  // writes into its input's storage (ReLU(inplace=True))
    int64_t in_channels = 0, out_channels = 0;  // a BatchNorm's num_features is both
    int64_t kernel = 0, stride = 0, padding = 0;
    std::array<int64_t, 4> output{};  // (N,C,H,W); the classifier's (N,K) is (N,K,1,1)
    int64_t parameters = 0;           // trainable values
    int64_t running_stats = 0;        // BatchNorm's running_mean and running_var values
    int64_t macs = 0;  // multiply-accumulates of a convolution or the classifier; 0 for the rest

    int64_t output_numel() const { return output[0] * output[1] * output[2] * output[3]; }
};

// Throws std::invalid_argument for a bad configuration or an input below min_input_size(cfg).
std::vector<Layer> describe_layers(const DenseNetConfig& cfg, int64_t batch, int64_t height, int64_t width);

const char* layer_kind_name(LayerKind kind);  // "Conv2d", "BatchNorm2d", ..., "cat"
int64_t total_macs(const std::vector<Layer>& layers);
int64_t total_parameters(const std::vector<Layer>& layers);

}  // namespace dn
