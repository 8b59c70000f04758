// libdensenet_gpu.so: the GPU engine as the program loads it (app/device_choice.h).
#include "app/device_choice.h"
#include "cuda/device.h"
#include "cuda/host_classifier.h"
#include "cuda/memory_report.h"
#include "cuda/nccl_collectives.h"
#include "cuda/step_engine.h"
#include "data/shard.h"

#include <utility>

namespace {
std::unique_ptr<dn::Classifier> make_classifier(dn::Parameters& params, const dn::RunShape& shape,
                                                dn::Precision precision, int device) {
    // eval and predict on a GPU run as PyTorch does by default: fp32 convolutions in TF32.
    return std::make_unique<dn::cuda::HostClassifier>(params, shape, precision, device, dn::cuda::Tf32::allowed);
}

std::unique_ptr<dn::StepEngine> make_step_engine(dn::Parameters& params, dn::ParameterUpdate& update,
                                                 const dn::StepEngineSetup& setup, int device, dn::cuda::Tf32 tf32,
                                                 dn::Communicator& comm, int64_t global_batch,
                                                 dn::BatchNormStats stats) {
    dn::cuda::DeviceReplicas replicas;
    if (comm.size() > 1) {
        replicas.collectives = dn::cuda::nccl_collectives(comm, device);
        for (int r = 0; r < comm.size(); ++r)
            replicas.shard_images.push_back(dn::shard_size(global_batch, r, comm.size()));
        replicas.stats = stats;
    }
    return std::make_unique<dn::cuda::GpuStepEngine>(params, update, setup, device, tf32, std::move(replicas));
}
}  // namespace

extern "C" const dn::GpuEngine* densenet_gpu_engine() {
    static const dn::GpuEngine engine{&dn::cuda::device_name, &dn::cuda::run_bench, &make_classifier,
                                      &make_step_engine, &dn::cuda::measure_memory, dn::cuda::nccl_built()};
    return &engine;
}
