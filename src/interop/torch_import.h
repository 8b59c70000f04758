// defines: ImportedStateDict, import_state_dict, open_checkpoint (a PyTorch .pth as a checkpoint)
#pragma once
#include "io/safetensors.h"
#include "io/torch_file.h"

#include <deque>
#include <string>
#include <vector>

namespace dn {

struct ImportedTensor {
    std::string name;
    const TorchTensor* tensor;
};

// The state_dict in a PyTorch file, named as torchvision names it today.
struct ImportedStateDict {
    std::vector<ImportedTensor> tensors;  // in the file's order
    std::string found_under;              // "" (the file is the state_dict), or the key it was nested under
    int64_t renamed = 0;                  // old torchvision names, such as denselayer1.norm.1.weight
    int64_t added_batch_counts = 0;       // num_batches_tracked added, as BatchNorm's loader adds it
    bool stripped_module_prefix = false;  // saved from nn.DataParallel: every key began with "module."
    std::deque<TorchTensor> added;        // what was added (the zeros of num_batches_tracked); never moves
};

// Finds the state_dict: the file's object itself when it maps names to tensors, or the first such
// dict under a key such as state_dict, model_state_dict, model or net (a training checkpoint's).
// Renames torchvision's old keys as torchvision's own loader does, and adds num_batches_tracked
// (0) beside the running statistics of files saved before PyTorch 0.4.1, as BatchNorm's
// _load_from_state_dict does. Throws std::runtime_error naming the file if there is none.
ImportedStateDict import_state_dict(const TorchFile& file);

// The state_dict as a safetensors file's bytes.
std::vector<std::byte> state_dict_safetensors(const ImportedStateDict& state_dict);

// A checkpoint for train --init, eval and predict: a safetensors file, or a PyTorch file (zip or
// legacy), told apart by their first bytes and converted in memory.
SafetensorsFile open_checkpoint(const std::string& path);

}  // namespace dn
