#include "train/cpu_step_engine.h"

#include <stdexcept>

namespace dn {

CpuStepEngine::CpuStepEngine(Parameters& params, ParameterUpdate& update, DataParallel& replicas,
                             const StepEngineSetup& setup)
    : params_(params), update_(update), replicas_(replicas),
      net_(ctx_, params, setup.shape, Pass::training, setup.intermediates, setup.precision),
      tester_(ctx_, params, setup.shape, Pass::inference, Intermediates::recompute, setup.precision) {
    net_.set_replica_sync(&replicas);
    net_.set_label_smoothing(setup.label_smoothing);
    WeightAverage* average = update.rules().average;
    if (average && setup.tested == TestedWeights::average)
        average_tester_ = std::make_unique<DenseNet>(ctx_, average->averaged(), setup.shape, Pass::inference,
                                                     Intermediates::recompute, setup.precision);
}

float CpuStepEngine::forward(const float* images_nchw, const int32_t* labels) {
    return net_.forward(images_nchw, labels, Mode::train);
}

AppliedUpdate CpuStepEngine::backward_and_update() {
    net_.backward();
    replicas_.finish_gradients();
    const AppliedUpdate applied = update_.apply(params_);
    replicas_.share_running_stats();
    update_.fold_into_average(params_);
    net_.load_weights();
    return applied;
}

Classifier& CpuStepEngine::tester(TestedWeights weights) {
    if (weights == TestedWeights::average && !average_tester_)
        throw std::logic_error("CpuStepEngine::tester: the run does not test an average of its weights");
    DenseNet& net = weights == TestedWeights::average ? *average_tester_ : tester_;
    net.load_weights();
    return net;
}

}  // namespace dn
