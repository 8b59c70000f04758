// libdensenet_gpu.so: the GPU engine as the program loads it (app/device_choice.h).
#include "app/device_choice.h"
#include "cuda/device.h"
#include "cuda/host_classifier.h"

namespace {
std::unique_ptr<dn::Classifier> make_classifier(dn::Parameters& params, const dn::RunShape& shape,
                                                dn::Precision precision, int device) {
    return std::make_unique<dn::cuda::HostClassifier>(params, shape, precision, device);
}
}  // namespace

extern "C" const dn::GpuEngine* densenet_gpu_engine() {
    static const dn::GpuEngine engine{&dn::cuda::device_name, &dn::cuda::run_bench, &make_classifier};
    return &engine;
}
