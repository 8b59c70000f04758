// defines: OnnxExport, export_onnx (a DenseNet in eval mode as an ONNX model)
#pragma once
#include "data/transform.h"
#include "model/model_info.h"
#include "model/parameters.h"

#include <string>

namespace dn {

constexpr int64_t kOnnxOpset = 13;  // the default domain's; every current runtime reads it

// What travels with the network, as the model's metadata_props: how to feed it and read it.
struct OnnxExport {
    ModelInfo info;               // architecture, class names, data set, the normalisation's name
    int64_t input_size = 224;     // the square it was trained at (the graph takes any size it can)
    Normalization normalization;  // its mean and std, empty when none
};

// The network as torchvision's module computes it in eval mode: running statistics in batch
// norm, the input "input" (N, C, H, W) float with a dynamic batch N, the output "logits" (N, K).
// Initializers are named as the state_dict names its tensors. The model is checked by ONNX's
// checker and its shape inference (what onnx.checker.check_model(full_check=True) runs), then
// written atomically; a model that fails the check is never written.
void export_onnx(const Parameters& params, const OnnxExport& what, const std::string& path);

}  // namespace dn
