// defines: what several subcommands do before they run a model: threads, input-size checks,
//          normalisation presets, starting from a checkpoint
#pragma once
#include "data/image_set.h"
#include "data/transform.h"
#include "model/activation_plan.h"
#include "model/config.h"
#include "model/model_info.h"
#include "model/parameters.h"

#include <string>

namespace dn {

// OpenMP's thread count for the compute (0: one per core). Must run before oneDNN starts.
void set_compute_threads(int64_t threads);

// The cores of one of `processes_on_machine` processes of a job: the machine's divided among them,
// and no more than this process may run on (mpirun binds each process to a core by default when
// there are 2 or fewer; taskset and the like too). At least 1.
int64_t cores_per_process(int64_t processes_on_machine);

// The default compute threads of such a process: cores_per_process, or 0 (OpenMP's default, one
// per core it may use) for a process alone.
int64_t threads_per_process(int64_t processes_on_machine);

// Throws std::invalid_argument saying which sizes work when the input is too small for the
// architecture, and that images of any size are resized to it.
void check_input_size(const DenseNetConfig& cfg, int64_t input_size);

// What eval and predict resize to: the size asked for (> 0), else the one the checkpoint was
// trained at, else torchvision's 224; checked against the architecture.
int64_t model_input_size(int64_t requested, const ModelInfo& info);

// "none" or "imagenet".
Normalization normalization(const std::string& name, int64_t channels);

// The memory this process may still take: /proc/meminfo's MemAvailable, or less where a cgroup
// (a container, a systemd slice, a batch job) limits it.
size_t available_memory_bytes();

// A training run's average of its weights (--ema-decay), and whether its tests run on it (--test-ema).
enum class WeightAverageUse { none, kept, kept_and_tested };

// Before a network or its loaders are built: throws std::invalid_argument when the network's arena
// and state (as the complexity report counts them; in training, with the inference network the
// tests run on), `loader_bytes_per_image` for each image of the batch (the loaders' batch buffers)
// and a weight average (its copy of the parameters and buffers, and the second inference network
// that tests it) need more than available_memory_bytes(), naming what it needs, what there is, and
// the largest batch that fits. Allocating it would otherwise end in a failed allocation or the OOM
// killer, long after the run began.
void check_memory_fits(const DenseNetConfig& cfg, const RunShape& shape, Pass pass, Intermediates intermediates,
                       Precision precision, size_t loader_bytes_per_image,
                       WeightAverageUse average = WeightAverageUse::none);

// Loads a checkpoint of the same architecture into params, whatever its number of classes: a
// classifier of another size is left as initialised, and the program says so.
void start_from(Parameters& params, const std::string& checkpoint);

}  // namespace dn
