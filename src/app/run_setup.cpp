#include "app/run_setup.h"

#include "app/layer_table.h"
#include "interop/torch_import.h"
#include "io/safetensors.h"
#include "model/checkpoint.h"
#include "model/complexity.h"
#include "model/model_info.h"

#include <omp.h>
#include <sched.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace dn {

void set_compute_threads(int64_t threads) {
    if (threads < 0) throw std::invalid_argument("--threads must be 0 (one per core) or more");
    if (threads > 0) omp_set_num_threads(int(threads));
}

int64_t cores_per_process(int64_t processes_on_machine) {
    cpu_set_t allowed;
    const int64_t usable = sched_getaffinity(0, sizeof allowed, &allowed) == 0 ? CPU_COUNT(&allowed) : 1;
    const int64_t cores = std::max<int64_t>(1, int64_t(std::thread::hardware_concurrency()));
    return std::max<int64_t>(1, std::min(usable, cores / std::max<int64_t>(1, processes_on_machine)));
}

int64_t threads_per_process(int64_t processes_on_machine) {
    return processes_on_machine <= 1 ? 0 : cores_per_process(processes_on_machine);
}

void check_input_size(const DenseNetConfig& cfg, int64_t input_size) {
    const int64_t min = min_input_size(cfg);
    if (input_size < min)
        throw std::invalid_argument(cfg.arch + " needs --input-size " + std::to_string(min) + " or more (got " +
                                    std::to_string(input_size) +
                                    "); images of any size are resized to it (32 and 224 are the usual choices)");
}

int64_t model_input_size(int64_t requested, const ModelInfo& info) {
    const int64_t size = requested > 0 ? requested : (info.input_size > 0 ? info.input_size : 224);
    check_input_size(info.config, size);
    return size;
}

Normalization normalization(const std::string& name, int64_t channels) {
    if (name == "none") return {};
    if (name == "imagenet") {
        if (channels != 3) throw std::invalid_argument("--normalize imagenet needs a 3-channel model");
        return {{0.485f, 0.456f, 0.406f}, {0.229f, 0.224f, 0.225f}};
    }
    throw std::invalid_argument("unknown normalisation '" + name + "' (none, imagenet)");
}

namespace {
// A number of bytes from a file that holds one ("max" or unreadable: no limit).
size_t limit_from(const std::string& path) {
    std::ifstream f(path);
    size_t value = 0;
    return f >> value ? value : std::numeric_limits<size_t>::max();
}
}  // namespace

size_t available_memory_bytes() {
    size_t available = std::numeric_limits<size_t>::max();
    std::ifstream meminfo("/proc/meminfo");
    for (std::string key; meminfo >> key;) {
        size_t kib = 0;
        meminfo >> kib;
        if (key == "MemAvailable:") available = kib * 1024;
        meminfo.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
    }
    // cgroup v2: this process's group's limit, less what the group already uses.
    std::ifstream self("/proc/self/cgroup");
    std::string line;
    if (std::getline(self, line) && line.rfind("0::", 0) == 0) {
        const std::string dir = "/sys/fs/cgroup" + line.substr(3);
        const size_t max = limit_from(dir + "/memory.max"), current = limit_from(dir + "/memory.current");
        if (max != std::numeric_limits<size_t>::max() && current != std::numeric_limits<size_t>::max())
            available = std::min(available, max > current ? max - current : 0);
    }
    return available;
}

void check_memory_fits(const DenseNetConfig& cfg, const RunShape& shape, Pass pass, Intermediates intermediates,
                       Precision precision, size_t loader_bytes_per_image, WeightAverageUse average) {
    const size_t available = available_memory_bytes();
    auto need = [&](int64_t batch) {
        const RunShape s{batch, shape.height, shape.width};
        size_t bytes = engine_memory(cfg, s, pass, intermediates, /*with_scratchpad=*/false, precision).total() +
                       size_t(batch) * loader_bytes_per_image;
        // Training tests on an inference network over the same parameters: its arena, and its
        // weights in oneDNN's layouts (the rest of its state is the training network's).
        size_t tester = 0;
        if (pass == Pass::training)
            tester = engine_memory(cfg, s, Pass::inference, Intermediates::recompute, false, precision).activations +
                     size_t(4 * model_bytes(cfg).parameters);
        bytes += tester;
        // The average is a Parameters of its own (values, gradients and buffers, as an inference
        // network's state); testing it builds a second tester over it.
        if (average != WeightAverageUse::none) bytes += size_t(engine_state_bytes(model_bytes(cfg), Pass::inference));
        if (average == WeightAverageUse::kept_and_tested) bytes += tester;
        return bytes;
    };
    const size_t needed = need(shape.batch);
    if (needed <= available) return;
    int64_t fits = 0, too_many = shape.batch;  // the plan grows with the batch: bisection is exact
    while (too_many - fits > 1) {
        const int64_t mid = fits + (too_many - fits) / 2;
        (need(mid) <= available ? fits : too_many) = mid;
    }
    std::ostringstream why;
    why << cfg.arch << " at " << shape.height << "x" << shape.width << ", batch " << shape.batch << " ("
        << (pass == Pass::training ? "training" : "inference") << ") needs " << bytes_text(int64_t(needed)) << ", but "
        << bytes_text(int64_t(available)) << " of memory is available: "
        << (fits > 0 ? "the largest batch that fits is " + std::to_string(fits)
                     : std::string("not even one image fits; try a smaller --input-size"))
        << (pass == Pass::training && intermediates == Intermediates::keep ? " (more without --memory keep)" : "");
    throw std::invalid_argument(why.str());
}

void start_from(Parameters& params, const std::string& checkpoint) {
    const SafetensorsFile file = open_checkpoint(checkpoint);
    const ModelInfo info = read_model_info(file);
    const DenseNetConfig& want = params.config();
    const DenseNetConfig& have = info.config;
    if (!same_architecture(have, want))
        throw std::runtime_error("'" + checkpoint + "' holds a " + have.arch + ", not a " + want.arch);
    std::set<std::string> leave_out;
    if (have.num_classes != want.num_classes) {
        leave_out = {"classifier.weight", "classifier.bias"};
        std::printf("%s: its classifier has %ld classes and this data set %ld, so it is replaced by a new one\n",
                    checkpoint.c_str(), long(have.num_classes), long(want.num_classes));
    }
    load_checkpoint(params, file, leave_out);
}

}  // namespace dn
