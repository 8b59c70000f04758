#include "interop/torch_import.h"

#include <nlohmann/json.hpp>

#include <cstring>
#include <fstream>
#include <set>
#include <stdexcept>

namespace dn {

namespace {

using Kind = PickleObject::Kind;

// A dict whose keys are strings and whose values are all tensors.
bool is_state_dict(const TorchFile& file, const PickleObject& v) {
    if (v.kind != Kind::dict || v.entries.empty()) return false;
    for (const auto& [k, value] : v.entries)
        if (k->kind != Kind::string || !file.tensor(*value)) return false;
    return true;
}

// The keys a training script's checkpoint nests its model under, most common first.
const char* const kNestingKeys[] = {"state_dict", "model_state_dict", "model", "net", "network", "module"};

const PickleObject* find_state_dict(const TorchFile& file, std::string& found_under) {
    const PickleObject& root = file.root();
    if (is_state_dict(file, root)) return &root;
    for (const char* key : kNestingKeys) {
        const PickleObject* v = root.find(key);
        if (v && is_state_dict(file, *v)) {
            found_under = key;
            return v;
        }
    }
    std::string keys;
    if (root.kind == Kind::dict)
        for (const auto& [k, value] : root.entries)
            if (k->kind == Kind::string && keys.size() < 200) keys += (keys.empty() ? "" : ", ") + k->text;
    throw std::runtime_error("'" + file.path() + "' holds no state_dict (a dict of tensors)" +
                             (keys.empty() ? std::string() : ", at its top or under state_dict or model; its keys: " + keys));
}

// torchvision's densenet._load_state_dict, which matches
//   ^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$
// and drops the dot between the groups: "denselayer1.norm.1.weight" -> "denselayer1.norm1.weight".
std::string torchvision_name(const std::string& key, int64_t& renamed) {
    std::vector<std::string> parts;
    for (size_t begin = 0;;) {
        const size_t dot = key.find('.', begin);
        parts.push_back(key.substr(begin, dot - begin));
        if (dot == std::string::npos) break;
        begin = dot + 1;
    }
    const size_t n = parts.size();
    if (n < 4) return key;
    const std::string& layer = parts[n - 4];
    const size_t at = layer.rfind("denselayer");
    const bool numbered = at != std::string::npos && layer.size() > at + 10 &&
                          layer.find_first_not_of("0123456789", at + 10) == std::string::npos;
    const std::set<std::string> modules{"norm", "relu", "conv"}, tensors{"weight", "bias", "running_mean", "running_var"};
    if (!numbered || !modules.count(parts[n - 3]) || (parts[n - 2] != "1" && parts[n - 2] != "2") ||
        !tensors.count(parts[n - 1]))
        return key;
    ++renamed;
    const size_t module_begin = key.size() - parts[n - 1].size() - parts[n - 2].size() - parts[n - 3].size() - 2;
    return key.substr(0, module_begin) + parts[n - 3] + parts[n - 2] + "." + parts[n - 1];
}

}  // namespace

ImportedStateDict import_state_dict(const TorchFile& file) {
    ImportedStateDict out;
    const PickleObject* dict = find_state_dict(file, out.found_under);
    out.stripped_module_prefix = true;
    for (const auto& [k, v] : dict->entries) out.stripped_module_prefix &= k->text.rfind("module.", 0) == 0;
    std::set<std::string> names;
    for (const auto& [k, v] : dict->entries) {
        std::string name = out.stripped_module_prefix ? k->text.substr(7) : k->text;
        name = torchvision_name(name, out.renamed);
        try {  // safetensors' header is JSON, whose strings are UTF-8; a Python 2 byte string may not be
            (void)nlohmann::json(name).dump();
        } catch (const nlohmann::json::exception&) {
            throw std::runtime_error("'" + file.path() + "' names a tensor with bytes that are not UTF-8 text");
        }
        if (!names.insert(name).second)
            throw std::runtime_error("'" + file.path() + "' names '" + name + "' twice (under old and new names?)");
        out.tensors.push_back({name, file.tensor(*v)});
    }
    const size_t count = out.tensors.size();
    for (size_t i = 0; i < count; ++i) {
        const std::string name = out.tensors[i].name;  // a copy: the push_back below may move the vector
        if (!name.ends_with(".running_mean")) continue;
        const std::string counter = name.substr(0, name.size() - 12) + "num_batches_tracked";
        if (names.count(counter)) continue;
        out.added.push_back({.dtype = "I64", .shape = {}, .data = std::vector<std::byte>(8)});
        out.tensors.push_back({counter, &out.added.back()});
        names.insert(counter);
        ++out.added_batch_counts;
    }
    return out;
}

std::vector<std::byte> state_dict_safetensors(const ImportedStateDict& state_dict) {
    std::vector<SafeTensor> tensors;
    for (const auto& [name, t] : state_dict.tensors)
        tensors.push_back({name, t->dtype, t->shape, t->data.data(), t->data.size()});
    return safetensors_bytes(tensors);
}

SafetensorsFile open_checkpoint(const std::string& path) {
    // safetensors: an 8-byte little-endian header length, then the header's JSON, "{...". The
    // length's first byte may be anything, 0x80 (a pickle's PROTO) among them: the '{' decides.
    // Otherwise a zip (torch.save since 1.6) or a pickle of protocol 2 to 5 (the legacy format).
    unsigned char head[9] = {};
    std::ifstream in(path, std::ios::binary);
    if (in) in.read(reinterpret_cast<char*>(head), sizeof head);
    const bool safetensors = in && head[8] == '{';
    const bool zip = std::memcmp(head, "PK\x03\x04", 4) == 0, pickle = head[0] == 0x80 && head[1] >= 2 && head[1] <= 5;
    if (!in || safetensors || !(zip || pickle)) return SafetensorsFile(path);  // which reports a missing or bad file
    const TorchFile file(path);
    return SafetensorsFile(path, state_dict_safetensors(import_state_dict(file)));
}

}  // namespace dn
