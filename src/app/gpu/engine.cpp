// libdensenet_gpu.so: the GPU engine as the program loads it (app/device_choice.h).
#include "app/device_choice.h"
#include "cuda/device.h"

extern "C" const dn::GpuEngine* densenet_gpu_engine() {
    static const dn::GpuEngine engine{&dn::cuda::device_name, &dn::cuda::run_bench};
    return &engine;
}
