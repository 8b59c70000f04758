// defines: ModelInfo (what a checkpoint says about itself), model_metadata, read_model_info
#pragma once
#include "io/safetensors.h"
#include "model/config.h"

#include <map>
#include <string>
#include <vector>

namespace dn {

// A checkpoint explains itself: the architecture, the input size it was trained at and the names
// of its classes travel in the safetensors __metadata__ (string to string, as the format allows).
struct ModelInfo {
    DenseNetConfig config;
    int64_t input_size = 0;                // 0: unknown (a state_dict saved by PyTorch)
    std::vector<std::string> class_names;  // empty: unknown
    std::string dataset;                   // empty: unknown
    std::string normalize = "none";        // the Normalize the model was trained behind ("none", "imagenet")
};

std::map<std::string, std::string> model_metadata(const ModelInfo& info);

// The architecture is read from the tensors' names and shapes, so any torchvision DenseNet's
// state_dict works (arch is the preset it equals, or "custom"); input size, class names and data
// set come from the metadata when it has them. Throws if the file is not a DenseNet.
ModelInfo read_model_info(const SafetensorsFile& file);

}  // namespace dn
