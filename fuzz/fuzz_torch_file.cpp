// A PyTorch .pth (zip or legacy) through the restricted pickle machine, then as the state_dict
// and safetensors bytes that densenet import writes.
#include "interop/torch_import.h"
#include "io/torch_file.h"

#include <cstdint>
#include <stdexcept>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace dn;
    try {
        const std::vector<std::byte> bytes(reinterpret_cast<const std::byte*>(data), reinterpret_cast<const std::byte*>(data) + size);
        const TorchFile file("fuzz.pth", bytes);
        const ImportedStateDict state_dict = import_state_dict(file);
        const SafetensorsFile converted("fuzz.pth", state_dict_safetensors(state_dict));
    } catch (const std::runtime_error&) {
    }
    return 0;
}
