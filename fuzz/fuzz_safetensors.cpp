// The safetensors reader, and a checkpoint's loading into the model it describes: what train
// --init, eval, predict and --resume do with a file from elsewhere.
#include "io/safetensors.h"
#include "model/checkpoint.h"
#include "model/model_info.h"

#include <cstdint>
#include <stdexcept>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace dn;
    try {
        const std::vector<std::byte> bytes(reinterpret_cast<const std::byte*>(data), reinterpret_cast<const std::byte*>(data) + size);
        const SafetensorsFile file("fuzz.safetensors", bytes);
        uint8_t sum = 0;  // every byte a tensor claims is read, so that ASan sees a claim past the end
        for (const auto& [name, t] : file.tensors())
            for (size_t i = 0; i < t.bytes; ++i) sum ^= std::to_integer<uint8_t>(t.data[i]);
        const ModelInfo info = read_model_info(file);
        Parameters params(info.config);
        load_checkpoint(params, file, {});
        return sum == 255 ? 0 : 0;
    } catch (const std::runtime_error&) {
    } catch (const std::invalid_argument&) {
    }
    return 0;
}
