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

// The driver API's calls this file makes, by name: the program does not link the driver, which
// machines without a GPU lack. Null where the driver did not load or start.
struct Driver {
    using DeviceCount = int (*)(int*);
    using DeviceGet = int (*)(int*, int);
    using BusId = int (*)(char*, int, int);
    DeviceCount device_count = nullptr;
    DeviceGet device_get = nullptr;
    BusId bus_id = nullptr;
};

const Driver& driver() {
    static const Driver once = [] {
        Driver d;
        void* library = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
        if (!library) return d;
        using Init = int (*)(unsigned);
        auto init = reinterpret_cast<Init>(dlsym(library, "cuInit"));
        if (!init || init(0) != 0) return d;  // 0: CUDA_SUCCESS
        d.device_count = reinterpret_cast<Driver::DeviceCount>(dlsym(library, "cuDeviceGetCount"));
        d.device_get = reinterpret_cast<Driver::DeviceGet>(dlsym(library, "cuDeviceGet"));
        d.bus_id = reinterpret_cast<Driver::BusId>(dlsym(library, "cuDeviceGetPCIBusId"));
        return d;
    }();
    return once;
}
}  // namespace

int visible_gpus() {
    static const int count = [] {
        int devices = 0;
        const Driver& d = driver();
        return d.device_count && d.device_count(&devices) == 0 ? devices : 0;
    }();
    return count;
}

std::string gpu_bus_id(int index) {
    const Driver& d = driver();
    int device = 0;
    char id[32] = {};
    if (!d.device_get || !d.bus_id || d.device_get(&device, index) != 0 || d.bus_id(id, sizeof id, device) != 0)
        return "";
    return id;
}

const GpuEngine* gpu_engine() { return loaded().engine; }
std::string why_no_gpu_engine() { return loaded().why_not; }

}  // namespace dn
