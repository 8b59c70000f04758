// defines: save_checkpoint, load_checkpoint (torchvision state_dict names and dtypes, in safetensors)
#pragma once
#include "model/parameters.h"

#include <map>
#include <string>

namespace dn {

// Every entry of the state_dict: F32 weights and running statistics, I64 num_batches_tracked.
// The file loads into torchvision.models.densenet*(num_classes=...) with strict=True.
void save_checkpoint(const Parameters& params, const std::string& path,
                     const std::map<std::string, std::string>& metadata = {});

// Strict, as load_state_dict(strict=True): a missing or unexpected key, a wrong shape or dtype,
// or a damaged file is a std::runtime_error that names it. params is untouched on failure.
// Returns the file's __metadata__.
std::map<std::string, std::string> load_checkpoint(Parameters& params, const std::string& path);

}  // namespace dn
