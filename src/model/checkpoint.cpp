#include "model/checkpoint.h"

#include "io/safetensors.h"
#include "tensor/shape_text.h"

#include <cstring>
#include <stdexcept>
#include <vector>

namespace dn {

static const char* dtype_of(TensorRole role) { return role == TensorRole::batch_count ? "I64" : "F32"; }

void save_checkpoint(const Parameters& params, const std::string& path,
                     const std::map<std::string, std::string>& metadata) {
    std::vector<SafeTensor> tensors;
    for (const auto& e : params.entries()) {
        const size_t bytes = size_t(e.numel()) * dtype_size(dtype_of(e.role));
        tensors.push_back({e.name, dtype_of(e.role), e.shape, params.data(e), bytes});
    }
    write_safetensors(path, tensors, metadata);
}

std::map<std::string, std::string> load_checkpoint(Parameters& params, const std::string& path) {
    SafetensorsFile file(path);
    load_checkpoint(params, file, {});
    return file.metadata();
}

void load_checkpoint(Parameters& params, const SafetensorsFile& file, const std::set<std::string>& leave_out) {
    const std::string& path = file.path();
    const auto& tensors = file.tensors();
    auto fail = [&](const std::string& why) {
        throw std::runtime_error("checkpoint '" + path + "' does not fit " + params.config().arch + " with " +
                                 std::to_string(params.config().num_classes) + " classes: " + why);
    };
    for (const auto& e : params.entries()) {
        if (leave_out.count(e.name)) continue;
        auto it = tensors.find(e.name);
        if (it == tensors.end()) fail("missing key '" + e.name + "'");
        if (it->second.shape != e.shape)
            fail("'" + e.name + "' has shape " + shape_text(it->second.shape) + ", expected " + shape_text(e.shape));
        if (it->second.dtype != dtype_of(e.role))
            fail("'" + e.name + "' is " + it->second.dtype + ", expected " + dtype_of(e.role));
    }
    for (const auto& [name, t] : tensors)
        if (!params.find(name) && !leave_out.count(name)) fail("unexpected key '" + name + "'");
    for (const auto& e : params.entries()) {
        if (leave_out.count(e.name)) continue;
        const auto& t = tensors.at(e.name);
        std::memcpy(params.data(e), t.data, t.bytes);
    }
}

}  // namespace dn
