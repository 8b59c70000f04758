// defines: Recipe (what decides a training run's result), apply_named_recipe, recipe_extras,
//          parse_duration
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace dn {

// What decides a run's result. It is saved in state.json and fixed for the run's life: --resume
// refuses to change it (epochs may grow, and the data may have moved).
struct Recipe {
    std::string recipe = "lecture";  // the named recipe the run started from (see apply_named_recipe)
    double time_budget = 0.0;        // seconds of wall time the run was fitted to (0: none)
    std::string arch = "densenet121";
    std::string dataset = "cifar10";
    std::string data_dir;  // empty: the data set's default
    std::string init;      // checkpoint the run started from
    int64_t input_size = 224;
    int64_t batch_size = 32;
    std::string optimizer = "adam";
    double lr = 1e-4;
    double momentum = 0.9;
    double weight_decay = 0.0;
    bool no_decay_bn_bias = false;
    std::string schedule = "constant";
    int64_t step_size = 30;
    std::vector<int64_t> milestones;
    double gamma = 0.1;
    double eta_min = 0.0;
    double pct_start = 0.3;
    int64_t warmup_epochs = 0;
    double warmup_start_factor = 1.0 / 3.0;
    double label_smoothing = 0.0;
    double clip_grad_norm = 0.0;
    double ema_decay = 0.0;  // 0: no average of the weights
    bool test_ema = false;
    std::string test_tta = "none";  // none, or flip: each test image also classified mirrored
    int64_t epochs = 10;
    int64_t last_epoch_batches = 0;  // where a time budget ends the last epoch early, its steps (0: whole)
    uint64_t seed = 0;
    bool no_shuffle = false;
    std::string augment = "none";
    std::string normalize = "none";
    int64_t limit_train = 0, limit_test = 0;  // 0: the whole set
    std::string memory = "recompute";
    std::string precision = "fp32";
};
// A run saved before a field existed reads it as the default, which is what that run did.
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Recipe, recipe, time_budget, arch, dataset, data_dir, init, input_size, batch_size, optimizer,
                                                lr, momentum, weight_decay, no_decay_bn_bias, schedule, step_size,
                                                milestones, gamma, eta_min, pct_start, warmup_epochs,
                                                warmup_start_factor, label_smoothing, clip_grad_norm, ema_decay,
                                                test_ema, test_tta, epochs, last_epoch_batches, seed,
                                                no_shuffle, augment, normalize, limit_train, limit_test, memory, precision)

// --recipe NAME fills in what the command line leaves open (given(flag) says whether it set it):
//   lecture: the lecture's run, the defaults above;
//   fast: the best accuracy in a fixed time on a small CPU (see the README): a small DenseNet-BC
//   at the data set's own size, SGD with OneCycleLR, label smoothing, flips, bf16, and a
//   15-minute budget unless --epochs or --time-budget is given.
// Returns the flags it set, as "--flag value", for the run's first lines. Throws
// std::invalid_argument for an unknown name.
std::vector<std::string> apply_named_recipe(Recipe& r, const std::string& name,
                                            const std::function<bool(const std::string&)>& given);

// What the run does beyond the lecture's constant-rate step, in one line ("" when nothing).
std::string recipe_extras(const Recipe& r);

// "15m", "90s", "1h30m", "900" (seconds) -> seconds; throws std::invalid_argument.
double parse_duration(const std::string& text);

}  // namespace dn
