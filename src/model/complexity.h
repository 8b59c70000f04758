// defines: ModelBytes, model_bytes, naive_forward_bytes, autograd_saved_bytes, engine_state_bytes,
//          dnnl_scratchpad_bytes, EngineMemory, engine_memory, max_batch, ComplexityOptions,
//          Complexity, analyse_complexity, complexity_json
#pragma once
#include "model/activation_plan.h"
#include "model/layers.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <vector>

namespace dn {

// The state_dict's storage.
struct ModelBytes {
    int64_t parameters = 0;     // trainable values
    int64_t running_stats = 0;  // BatchNorm running_mean and running_var values
    int64_t batch_counts = 0;   // BatchNorm num_batches_tracked, int64 each

    int64_t fp32() const { return 4 * (parameters + running_stats) + 8 * batch_counts; }
    // As model.to(torch.bfloat16) stores it: every floating tensor in bf16, the counters int64.
    int64_t bf16() const { return 2 * (parameters + running_stats) + 8 * batch_counts; }
};
ModelBytes model_bytes(const DenseNetConfig& cfg);

// Every tensor torchvision's forward creates, as if none were freed: the input, the output of every
// module, torch.cat and head operation (an in-place ReLU shares its input's), and the max-pool's
// int64 indices (PyTorch makes them in inference too). Per-channel BatchNorm statistics are left out.
int64_t naive_forward_bytes(const DenseNetConfig& cfg, const RunShape& shape);

// What autograd saves for backward in a training forward of torchvision's DenseNet
// (memory_efficient=False), the input included and parameters and buffers excluded: what PyTorch
// keeps alive between forward and backward.
int64_t autograd_saved_bytes(const DenseNetConfig& cfg, const RunShape& shape);

// What the engine holds besides its activation arena: Parameters' values, gradients (allocated in
// inference too) and buffers, and in training Adam's exp_avg and exp_avg_sq.
int64_t engine_state_bytes(const ModelBytes& model, Pass pass);

// The one user scratchpad oneDNN needs for the primitives DenseNet builds for this shape. Builds
// them all (a second or so for densenet121 at 224x224), in a DnnlContext of its own.
size_t dnnl_scratchpad_bytes(const DenseNetConfig& cfg, const RunShape& shape, Pass pass,
                             Precision precision = Precision::fp32);

struct EngineMemory {
    size_t activations = 0;  // plan_activations(...).memory.total_bytes(): the arena DenseNet allocates,
                             // for inference a chunk's (executed_shape)
    size_t state = 0;        // engine_state_bytes
    size_t scratchpad = 0;   // dnnl_scratchpad_bytes, or 0 where it was not measured
    // Inference: the batch's float images and its logits and log-probabilities, all there at once
    // while the arena holds a chunk; what grows with the batch once it runs in chunks.
    size_t batch = 0;
    size_t total() const { return activations + state + scratchpad + batch; }
};
EngineMemory engine_memory(const DenseNetConfig& cfg, const RunShape& shape, Pass pass, Intermediates intermediates,
                           bool with_scratchpad, Precision precision = Precision::fp32);

// The largest batch whose engine_memory fits in `budget` bytes; 0 if not even one image does. The
// plan grows with the batch, so a binary search over plan_activations is exact; with the scratchpad,
// the result is then moved until it fits and one more image does not.
int64_t max_batch(const DenseNetConfig& cfg, int64_t input_size, Pass pass, Intermediates intermediates,
                  size_t budget, bool with_scratchpad, Precision precision = Precision::fp32);

struct ComplexityOptions {
    int64_t batch = 32;
    int64_t input_size = 224;
    int64_t epoch_images = 50000;  // CIFAR-10's training set
    double device_tflops = 0.0;    // 0: no time estimate
    double memory_gib = 0.0;       // 0: this machine's physical memory
    bool with_scratchpad = true;
    Precision precision = Precision::fp32;  // of the engine's memory figures: bf16 as --precision bf16 trains
};

struct Complexity {
    DenseNetConfig cfg;
    ComplexityOptions options;
    std::vector<Layer> layers;  // for one image
    ModelBytes model;
    int64_t macs = 0;  // per image: convolutions and the classifier
    // What the engine's training step runs, per image, in MACs: forward, backward-weights of every
    // convolution and the classifier, backward-data of all but conv0 (the image needs no gradient),
    // in either memory mode (recomputing re-runs batch norms only, which have no MACs).
    int64_t engine_training_macs = 0;
    int64_t naive_bytes = 0, autograd_saved = 0;                // at options.batch
    EngineMemory inference, training_recompute, training_keep;  // at options.batch
    size_t budget = 0;                                          // bytes
    int64_t max_batch_inference = 0, max_batch_training = 0, max_batch_training_keep = 0;

    // Seconds for `images` at options.device_tflops, by the usual convention: 2 FLOPs per MAC, and
    // a training step costs 3 forwards (backward-data and backward-weights about one each).
    double seconds(int64_t images, Pass pass) const;
};

// Throws std::invalid_argument for a bad configuration, batch or input size.
Complexity analyse_complexity(const DenseNetConfig& cfg, const ComplexityOptions& options);

// Every figure, with the conventions in words under "conventions".
nlohmann::ordered_json complexity_json(const Complexity& c);

}  // namespace dn
