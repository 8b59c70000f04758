// defines: what several subcommands do before they run a model: threads, input-size checks,
//          normalisation presets, starting from a checkpoint, claiming a run folder
#pragma once
#include "data/image_set.h"
#include "data/transform.h"
#include "model/config.h"
#include "model/parameters.h"

#include <string>

namespace dn {

// OpenMP's thread count for the compute (0: one per core). Must run before oneDNN starts.
void set_compute_threads(int64_t threads);

// Throws std::invalid_argument saying which sizes work when the input is too small for the
// architecture, and that smaller images are resized.
void check_input_size(const DenseNetConfig& cfg, int64_t input_size, const ImageSet& set);

// "none" or "imagenet".
Normalization normalization(const std::string& name, int64_t channels);

// Loads a checkpoint of the same architecture into params, whatever its number of classes: a
// classifier of another size is left as initialised, and the program says so.
void start_from(Parameters& params, const std::string& checkpoint);

// Creates dir; refuses one that already holds a run (state.json) unless overwrite, so that no
// earlier run is lost by accident; checks the folder is writable.
void prepare_run_folder(const std::string& dir, bool overwrite);

}  // namespace dn
