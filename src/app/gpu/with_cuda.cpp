// The program's GPU engine where it is built with one: libdensenet_gpu.so, loaded on first use
// from beside the program, or from ../lib/densenet where it is installed; and the GPU count,
// from the driver.
#include "app/device_choice.h"

#include <dlfcn.h>

#include <filesystem>
#include <system_error>

namespace dn {

namespace {
struct Loaded {
    const GpuEngine* engine = nullptr;
    std::string why_not;
};

Loaded load() {
    std::error_code error;
    const std::filesystem::path program = std::filesystem::read_symlink("/proc/self/exe", error);
    if (error) return {nullptr, "the program's own path is unknown (/proc/self/exe), so its GPU engine cannot be found"};
    const std::filesystem::path dir = program.parent_path();
    std::string tried;
    const std::filesystem::path candidates[] = {dir / "libdensenet_gpu.so", dir / "../lib/densenet/libdensenet_gpu.so"};
    for (const std::filesystem::path& candidate : candidates) {
        if (!std::filesystem::exists(candidate, error)) continue;
        void* library = dlopen(candidate.c_str(), RTLD_NOW | RTLD_LOCAL);
        if (!library) {
            tried = dlerror();
            continue;
        }
        using Entry = const GpuEngine* (*)();
        if (auto entry = reinterpret_cast<Entry>(dlsym(library, "densenet_gpu_engine"))) return {entry(), ""};
        tried = candidate.string() + " has no densenet_gpu_engine";
    }
    if (tried.empty()) return {nullptr, "the GPU engine, libdensenet_gpu.so, is not beside the program"};
    return {nullptr, "the GPU engine did not load (" + tried + ")"};
}

const Loaded& loaded() {
    static const Loaded once = load();
    return once;
}
}  // namespace

int visible_gpus() {
    // The driver API's two calls, by name: the program does not link the driver, which machines
    // without a GPU lack.
    static const int count = [] {
        void* driver = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
        if (!driver) return 0;
        using Init = int (*)(unsigned);
        using DeviceCount = int (*)(int*);
        auto init = reinterpret_cast<Init>(dlsym(driver, "cuInit"));
        auto device_count = reinterpret_cast<DeviceCount>(dlsym(driver, "cuDeviceGetCount"));
        int devices = 0;
        if (!init || !device_count || init(0) != 0 || device_count(&devices) != 0) return 0;  // 0: CUDA_SUCCESS
        return devices;
    }();
    return count;
}

const GpuEngine* gpu_engine() { return loaded().engine; }
std::string why_no_gpu_engine() { return loaded().why_not; }

}  // namespace dn
