#include "app/run_setup.h"

#include "io/safetensors.h"
#include "model/checkpoint.h"
#include "model/model_info.h"

#include <omp.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace dn {

void set_compute_threads(int64_t threads) {
    if (threads < 0) throw std::invalid_argument("--threads must be 0 (one per core) or more");
    if (threads > 0) omp_set_num_threads(int(threads));
}

void check_input_size(const DenseNetConfig& cfg, int64_t input_size, const ImageSet& set) {
    const int64_t min = min_input_size(cfg);
    if (input_size < min)
        throw std::invalid_argument(cfg.arch + " needs --input-size " + std::to_string(min) + " or more (got " +
                                    std::to_string(input_size) + "); smaller images, such as " +
                                    std::to_string(set.height) + "x" + std::to_string(set.width) +
                                    " ones, are resized to it (32 and 224 are the usual choices)");
}

Normalization normalization(const std::string& name, int64_t channels) {
    if (name == "none") return {};
    if (name == "imagenet") {
        if (channels != 3) throw std::invalid_argument("--normalize imagenet needs a 3-channel model");
        return {{0.485f, 0.456f, 0.406f}, {0.229f, 0.224f, 0.225f}};
    }
    throw std::invalid_argument("unknown normalisation '" + name + "' (none, imagenet)");
}

void start_from(Parameters& params, const std::string& checkpoint) {
    SafetensorsFile file(checkpoint);
    const ModelInfo info = read_model_info(file);
    const DenseNetConfig& want = params.config();
    const DenseNetConfig& have = info.config;
    if (have.growth_rate != want.growth_rate || have.block_config != want.block_config ||
        have.num_init_features != want.num_init_features || have.bn_size != want.bn_size || have.stem != want.stem ||
        have.in_channels != want.in_channels)
        throw std::runtime_error("'" + checkpoint + "' holds a " + have.arch + ", not a " + want.arch);
    std::set<std::string> leave_out;
    if (have.num_classes != want.num_classes) {
        leave_out = {"classifier.weight", "classifier.bias"};
        std::printf("%s: its classifier has %ld classes and this data set %ld, so it is replaced by a new one\n",
                    checkpoint.c_str(), long(have.num_classes), long(want.num_classes));
    }
    load_checkpoint(params, file, leave_out);
}

void prepare_run_folder(const std::string& dir, bool overwrite) {
    namespace fs = std::filesystem;
    if (fs::exists(fs::path(dir) / "state.json") && !overwrite)
        throw std::invalid_argument("'" + dir + "' already holds a run: continue it with --resume " + dir +
                                    ", or pass --overwrite, or choose another --out");
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) throw std::runtime_error("cannot create the run folder '" + dir + "': " + ec.message());
    const fs::path probe = fs::path(dir) / ".write-test";
    if (!std::ofstream(probe)) throw std::runtime_error("cannot write into the run folder '" + dir + "'");
    fs::remove(probe, ec);
}

}  // namespace dn
