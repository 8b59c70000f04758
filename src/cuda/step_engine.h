// defines: cuda::GpuStepEngine (the GPU engine as a training run's StepEngine: the parameters,
//          their gradients and the optimizer's state in device memory, stepped there)
#pragma once
#include "cuda/batch_upload.h"
#include "cuda/collectives.h"
#include "cuda/context.h"
#include "cuda/densenet.h"
#include "cuda/host_classifier.h"
#include "cuda/optimizer_step.h"
#include "cuda/tf32.h"
#include "train/step_engine.h"

#include <memory>
#include <vector>

namespace dn::cuda {

// One process on one GPU, alone or as one of a data-parallel job's replicas (one process per GPU,
// DeviceReplicas: each trains on its shard of every batch; after backward the replicas sum their
// gradients, and with per-process batch norm replica 0's running statistics go to the others after
// the step, as the CPU engine's DataParallel does). A step copies the batch in (through pinned
// memory, on a stream of its own: while the previous step's backward runs, see BatchUpload), runs
// forward and waits for its loss (the step's one host sync: the run checks the loss before the
// update, as on the CPU), copies the logits back, then queues backward, clipping and the
// optimizer's step (Adam, AdamW or SGD, over each of the optimizer's decay ranges, with the scalars
// the CPU's optimizers derive from the same options and schedule) and the weights' reload without
// waiting. The host's optimizer object keeps the step count and the hyper-parameters; its state
// arrays are the device's only after to_host(), so that a checkpoint saves and a resume loads the
// CPU's files. Where the run keeps an average of the weights (WeightAverage), it is kept on the
// device too, blended after each step, and tested there.
// Refuses (std::invalid_argument) amsgrad, which it does not do.
class GpuStepEngine final : public StepEngine {
public:
    GpuStepEngine(Parameters& params, ParameterUpdate& update, const StepEngineSetup& setup, int device, Tf32 tf32,
                  DeviceReplicas replicas = {});
    ~GpuStepEngine() override;  // waits for the work in flight
    GpuStepEngine(const GpuStepEngine&) = delete;
    GpuStepEngine& operator=(const GpuStepEngine&) = delete;

    float forward(const float* images_nchw, const int32_t* labels) override;
    const float* logits() const override { return logits_.data(); }
    int64_t classes() const override { return classes_; }
    AppliedUpdate backward_and_update() override;
    Classifier& tester(TestedWeights weights) override;
    void to_host() override;
    void from_host() override;
    size_t activation_bytes() const override { return net_.plan().memory.total_bytes(); }
    const DenseNet& network() const { return net_; }

private:
    void step_optimizer(int64_t step);
    void fold_into_average();
    void copy_optimizer_state(cudaMemcpyKind kind);

    DeviceReplicas replicas_;  // before the network, which keeps its address
    Parameters& params_;  // the host's: its batch counts are counted there
    ParameterUpdate& update_;
    int64_t classes_;
    Context ctx_;
    DeviceParameters device_;
    DenseNet net_;
    DeviceClassifier tester_;
    BatchUpload batches_;
    std::vector<float> logits_;
    std::vector<DeviceBuffer> state_;  // the optimizer's state arrays, in its order (an empty one: none)
    GradientNorm norm_;
    // The weight average's device copy, where the run keeps one, and its tester, where it tests it.
    std::unique_ptr<DeviceParameters> average_;
    std::unique_ptr<DeviceClassifier> average_tester_;
};

}  // namespace dn::cuda
