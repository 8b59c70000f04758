// defines: StepEngineSetup, StepEngine (what a training run asks of the engine it trains on: the
//          CPU's, train/cpu_step_engine.h, or a GPU's, cuda/step_engine.h)
#pragma once
#include "model/activation_plan.h"  // RunShape, Intermediates, Precision
#include "model/classifier.h"
#include "train/parameter_update.h"

#include <cstddef>
#include <cstdint>

namespace dn {

// The run's networks: the training network and its tester, for this process's shard of a batch.
struct StepEngineSetup {
    RunShape shape;
    Intermediates intermediates = Intermediates::recompute;
    Precision precision = Precision::fp32;
    double label_smoothing = 0.0;  // the training loss's (nn.CrossEntropyLoss(label_smoothing=...))
    // average: the tests measure the run's weight average (--test-ema), which then has a tester of
    // its own.
    TestedWeights tested = TestedWeights::trained;
};

// An engine trains the run's Parameters with the run's ParameterUpdate. One that keeps its own
// copy of them (a GPU's memory) brings the host's parameters, running statistics and optimizer
// state up to date only in to_host(), and takes in changes made on the host only in from_host():
// the run calls the one before it saves or draws them and the other after it loads or restores
// them. For the CPU engine both do what the CPU needs (reloading its weight layouts).
class StepEngine {
public:
    virtual ~StepEngine() = default;

    // A step's forward in training mode over this process's shard of a batch, in host memory
    // (N,C,H,W) and labels (N): the shard's mean loss. logits(): its (N,K) logits, in host memory.
    virtual float forward(const float* images_nchw, const int32_t* labels) = 0;
    virtual const float* logits() const = 0;
    virtual int64_t classes() const = 0;  // K
    // The rest of the step: backward, the replicas' gradient sums, the update (the schedule's
    // hyper-parameters, clipping, the optimizer's step), the replicas' running statistics, the
    // weight average, and the weights reloaded for the next forward.
    virtual AppliedUpdate backward_and_update() = 0;

    // The inference network the tests run, its weights loaded from those the engine trains, or
    // from their average where the setup tests it (on the CPU, the host's copies as they are now).
    virtual Classifier& tester(TestedWeights weights) = 0;

    virtual void to_host() = 0;
    virtual void from_host() = 0;

    // The training network's one planned arena, in bytes.
    virtual size_t activation_bytes() const = 0;
};

}  // namespace dn
