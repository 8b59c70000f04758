// defines: CpuStepEngine (the CPU engine as a run's StepEngine: the training DenseNet and its
//          inference tester over the run's Parameters, with data-parallel replicas)
#pragma once
#include "dist/data_parallel.h"
#include "model/densenet.h"
#include "ops/dnnl_context.h"
#include "train/step_engine.h"

#include <memory>

namespace dn {

class CpuStepEngine final : public StepEngine {
public:
    // replicas: this process among the job's (one, or several training data-parallel); its
    // local batch is setup.shape.batch.
    CpuStepEngine(Parameters& params, ParameterUpdate& update, DataParallel& replicas, const StepEngineSetup& setup);

    float forward(const float* images_nchw, const int32_t* labels) override;
    const float* logits() const override { return net_.logits(); }
    int64_t classes() const override { return net_.classes(); }
    AppliedUpdate backward_and_update() override;
    Classifier& tester(TestedWeights weights) override;
    void to_host() override {}  // the network works on the host's parameters
    void from_host() override { net_.load_weights(); }
    size_t activation_bytes() const override { return net_.plan().memory.total_bytes(); }

private:
    Parameters& params_;
    ParameterUpdate& update_;
    DataParallel& replicas_;
    DnnlContext ctx_;
    DenseNet net_;
    // The tests run on an inference network over the same parameters, as `densenet eval` does: its
    // norms folded into its convolutions and its batch in cache-sized chunks, faster than the
    // training network's eval mode. It reloads the weights before each test. The average's, where
    // the run tests it, is another over the average's parameters.
    DenseNet tester_;
    std::unique_ptr<DenseNet> average_tester_;
};

}  // namespace dn
