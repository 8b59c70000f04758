// defines: save_checkpoint, load_checkpoint (torchvision state_dict names and dtypes, in safetensors)
#pragma once
#include "io/safetensors.h"
#include "model/parameters.h"

#include <map>
#include <set>
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

// The same from an open file, leaving the tensors named in `leave_out` as they are in params
// (the classifier, when fine-tuning to another number of classes): they are neither required nor
// read, whatever their shape in the file.
void load_checkpoint(Parameters& params, const SafetensorsFile& file, const std::set<std::string>& leave_out);

}  // namespace dn
