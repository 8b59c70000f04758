// defines: cuda::DeviceParameters (the device copy of a Parameters table: values, gradients,
//          running statistics), cuda::DenseNet (the CPU engine's DenseNet, on the GPU: the same
//          activation plan over one device arena, the same forward and backward, in fp32 or
//          bf16 as the CPU engine's precisions)
#pragma once
#include "cuda/collectives.h"
#include "cuda/context.h"
#include "cuda/conv.h"
#include "cuda/linear.h"
#include "cuda/pool.h"
#include "model/activation_plan.h"
#include "model/parameters.h"
#include "ops/batch_norm_relu.h"  // DyPixels
#include "tensor/feature_map.h"

#include <memory>
#include <vector>

namespace dn::cuda {

// The device mirror of a Parameters table, in the same flat layouts, so that a host pointer into
// params maps to the device pointer at the same offset. The optimizer updates `values` on the
// device; the host copy is refreshed only to save a checkpoint.
// none: values and running statistics only (a weight average, which nothing differentiates).
enum class DeviceGradients { kept, none };

class DeviceParameters {
public:
    explicit DeviceParameters(Parameters& params, DeviceGradients gradients = DeviceGradients::kept);

    // host -> device: values and running statistics; returns *this, for a network built next
    DeviceParameters& upload(cudaStream_t stream);
    void download(cudaStream_t stream);  // device -> host: the same, and any gradients (synchronises)

    float* values() const { return values_.floats(); }
    float* grads() const { return grads_.floats(); }
    float* running_stats() const { return running_.floats(); }
    int64_t count() const { return params_.count(); }
    int64_t running_count() const { return params_.running_count(); }
    // The device address of a host pointer into params' values, gradients (nullptr where there
    // are none) or running statistics.
    float* at(const float* host) const;

private:
    Parameters& params_;
    DeviceBuffer values_, grads_, running_;
};

// Mode of the CPU engine: train uses batch statistics and updates the running ones.
enum class StepMode { train, eval };

class DenseNet {
public:
    // bf16: the CPU engine's mixed precision (ActivationPlan: bf16 convolution operands and
    // activations; parameters, gradients of the block buffers, statistics and the head in f32).
    DenseNet(Context& ctx, Parameters& params, DeviceParameters& device, const RunShape& shape, Pass pass,
             Intermediates intermediates, Precision precision = Precision::fp32);

    // The convolution weights in cuDNN's layout (OHWI), from the device's OIHW values: after every
    // change to them (an optimizer step, an upload).
    void load_weights();

    // images (N,C,H,W) and labels (N) on the device. Queues the step; loss() waits for it.
    void forward(const float* images_nchw, const int32_t* labels, StepMode mode);
    void backward();  // assigns every gradient in the device parameters
    // Train as one of several replicas (replicas.several(), which must outlive the network): the
    // loss is the mean over the global batch, and with BatchNormStats::global batch norm
    // normalises with the global batch's statistics and its backward reads the global batch's
    // sums, as PyTorch's SyncBatchNorm. Each replica's parameter gradients are then its share of
    // the global batch's, for the replicas to sum (GpuStepEngine).
    void set_replicas(const DeviceReplicas& replicas);
    // Train on nn.CrossEntropyLoss(label_smoothing=e) (0: the NLL); eval mode's loss stays the NLL.
    void set_label_smoothing(double e) { label_smoothing_ = e; }
    float loss() const;  // the last forward's mean NLL (synchronises)

    const float* logits() const { return at(plan_.logits); }      // (N,K), device
    const float* log_probs() const { return at(plan_.log_probs); }  // (N,K), device
    const ActivationPlan& plan() const { return plan_; }
    // What the network allocated on the device, by purpose.
    struct Bytes {
        size_t arena = 0;          // the activation plan's one arena
        size_t workspace = 0;      // cuDNN's, for the algorithms chosen
        size_t weight_copies = 0;  // the convolution weights in cuDNN's layout, and one dW
        size_t scratch = 0;        // the statistics' reductions, the loss
        size_t total() const { return arena + workspace + weight_copies + scratch; }
    };
    Bytes bytes() const;
    size_t device_bytes() const { return bytes().total(); }

private:
    struct LayerOps {
        std::unique_ptr<Conv2d> conv1, conv2;
        void *w1, *w2;  // their OHWI weights, of the activations' type
    };
    struct TransitionOps {  // the norm, ReLU and pool before the convolution are one kernel
        std::unique_ptr<Conv2d> conv;
        void* w;
    };
    struct DeviceBn {  // a BatchNormParams' device addresses
        float *weight, *bias, *dweight, *dbias, *running_mean, *running_var;
        int64_t channels;
        int64_t* num_batches_tracked;  // host: counted on the host, no device work
    };

    float* at(size_t offset) const { return reinterpret_cast<float*>(arena_.bytes() + offset); }  // an f32 region
    void* raw(size_t offset) const { return arena_.bytes() + offset; }
    // Dense NHWC views of the batch: of the activations' type (plan_.activation), or f32.
    FeatureMap map(size_t offset, int64_t h, int64_t w, int64_t c) const;
    FeatureMap f32_map(size_t offset, int64_t h, int64_t w, int64_t c) const;
    FeatureMap block_features(size_t b) const;
    FeatureMap block_grad(size_t b) const;
    DeviceBn bn(const BatchNormParams& p) const;
    // Every convolution's OIHW parameters and its OHWI copy, for load_weights.
    struct ConvWeights {
        const ConvParams* params;
        ConvShape shape;
        void* ohwi;
    };
    void* add_conv_weights(const ConvParams& p, const ConvShape& shape, size_t& offset);

    // A training batch's statistics of x's channels: its own, or the global batch's.
    void train_stats(float* mean, float* var, const FeatureMap& x);
    void stats_and_running(float* mean, float* var, const FeatureMap& x, const DeviceBn& b);
    // The values behind a statistic over `pixels` of this replica's batch: the global batch's
    // where batch norm is synchronised (the running variance's correction, pass 2's mean).
    int64_t stat_count(int64_t pixels) const;
    bool synchronised() const { return replicas_ && replicas_->synchronise_batch_norm(); }
    // Pass 1's sums (dgamma, dbeta) as pass 2 reads them: this replica's, or the global batch's
    // where batch norm is synchronised (the parameter gradients keep this replica's share).
    struct BnSums {
        const float *dgamma, *dbeta;
    };
    BnSums pass_two_sums(const DeviceBn& b);
    void conv_backward_weights(const Conv2d& conv, const ConvParams& p, const void* x, const void* dy);
    void bn_relu_backward_assign(const FeatureMap& dx, const DeviceBn& b, const FeatureMap& dy, const FeatureMap& x,
                                 const float* mean, const float* var, DyPixels dy_pixels = DyPixels::same_pixels);

    void stem_forward(StepMode mode);
    void dense_layer_forward(size_t b, size_t i, StepMode mode);
    void transition_forward(size_t b, StepMode mode);
    void head_forward(StepMode mode);
    // Into the given buffers: forward's, or, recomputing, backward's (as the CPU engine's).
    void activate_layer_input(size_t b, size_t i, const LayerIntermediates& where, StepMode mode);
    void activate_bottleneck(size_t b, size_t i, const LayerIntermediates& where, StepMode mode);
    void pool_transition_input(size_t b, size_t pooled_input, StepMode mode);
    void head_backward();
    void dense_layer_backward(size_t b, size_t i);
    void transition_backward(size_t b);
    void stem_backward();

    Context& ctx_;
    Parameters& params_;
    DeviceParameters& device_;
    const DenseNetConfig& cfg_;
    ActivationPlan plan_;
    Pass pass_;
    DeviceBuffer arena_, workspace_, reduction_scratch_, weights_ohwi_, dweight_ohwi_, loss_;
    std::vector<ConvWeights> conv_weights_;  // every convolution, in parameter order
    std::unique_ptr<Conv2d> conv0_;
    void* w0_ = nullptr;
    std::unique_ptr<Pool2d> pool0_;
    std::vector<std::vector<LayerOps>> layers_;
    std::vector<TransitionOps> transitions_;
    std::unique_ptr<Linear> classifier_;
    const DeviceReplicas* replicas_ = nullptr;
    // Synchronised batch norm's: this replica's moments (2C), every replica's (replicas, 2C), the
    // global pass-1 sums (2C), and the shards' images (replicas), for the widest C.
    DeviceBuffer moments_, gathered_moments_, global_sums_, shard_images_;
    const int32_t* labels_ = nullptr;
    double label_smoothing_ = 0.0;
    bool has_forward_for_backward_ = false;
};

}  // namespace dn::cuda
