// The program's GPU engine where it was built without one (nvcc or cuDNN missing).
#include "app/device_choice.h"

namespace dn {

int visible_gpus() { return 0; }
std::string gpu_bus_id(int) { return ""; }
const GpuEngine* gpu_engine() { return nullptr; }
std::string why_no_gpu_engine() {
    return "this densenet was built without the GPU engine (nvcc and cuDNN were not found when it was configured)";
}

}  // namespace dn
