#include "io/torch_file.h"

#include <archive.h>
#include <archive_entry.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <stdexcept>

namespace dn {

namespace {

using Kind = PickleObject::Kind;

struct StorageType {
    const char* dtype;
    size_t element_size;
};

// torch.<Name>Storage: the typed storages a tensor's persistent id names.
const std::map<std::string, StorageType>& storage_types() {
    static const std::map<std::string, StorageType> types{
        {"FloatStorage", {"F32", 4}}, {"DoubleStorage", {"F64", 8}}, {"HalfStorage", {"F16", 2}},
        {"BFloat16Storage", {"BF16", 2}}, {"LongStorage", {"I64", 8}}, {"IntStorage", {"I32", 4}},
        {"ShortStorage", {"I16", 2}}, {"CharStorage", {"I8", 1}}, {"ByteStorage", {"U8", 1}},
        {"BoolStorage", {"BOOL", 1}}};
    return types;
}

// A storage as a persistent id names it: which bytes (its key), of what type, and for the
// legacy format's views, which part of them.
struct StorageRef {
    std::string key;
    StorageType type;
    int64_t numel = 0;        // of the whole storage
    int64_t view_offset = 0;  // in elements
    int64_t view_numel = 0;
};

struct TensorRef {
    int64_t storage = 0;  // index into the rules' storages
    int64_t offset = 0;
    std::vector<int64_t> size, stride;
};

int64_t as_int(const PickleObject* v, const char* what) {
    if (!v || v->kind != Kind::integer) throw std::runtime_error(std::string(what) + " is not an integer");
    return v->integer;
}

std::vector<int64_t> as_ints(const PickleObject* v, const char* what) {
    if (!v || (v->kind != Kind::tuple && v->kind != Kind::list))
        throw std::runtime_error(std::string(what) + " is not a tuple of integers");
    std::vector<int64_t> out;
    for (const PickleObject* item : v->items) out.push_back(as_int(item, what));
    return out;
}

const std::string& as_string(const PickleObject* v, const char* what) {
    if (!v || v->kind != Kind::string) throw std::runtime_error(std::string(what) + " is not a string");
    return v->text;
}

// What a PyTorch checkpoint's pickle may do: build OrderedDicts, tensors and parameters, and
// name storages by persistent id. Everything else is refused.
class TorchRules : public UnpickleRules {
public:
    std::vector<StorageRef> storages;
    std::map<std::string, int64_t> storage_by_key;
    std::vector<TensorRef> tensors;  // extension ids: storages are 2k, tensors 2k+1

    bool allows_global(const std::string& module, const std::string& name) const override {
        if (module == "collections") return name == "OrderedDict";
        if (module == "torch._utils")
            return name == "_rebuild_tensor_v2" || name == "_rebuild_tensor" || name == "_rebuild_parameter";
        if (module == "torch") return storage_types().count(name) > 0;
        return false;
    }

    PickleObject* call(PickleArena& arena, const PickleObject& callable, const PickleObject& args) override {
        const auto& a = args.items;
        if (callable.name == "OrderedDict") {
            if (!a.empty()) throw std::runtime_error("OrderedDict is called with arguments");
            return arena.make(Kind::dict);
        }
        if (callable.name == "_rebuild_parameter") {  // (data, requires_grad, backward_hooks): the data
            if (a.size() < 2 || !is_tensor(a[0])) throw std::runtime_error("_rebuild_parameter is not given a tensor");
            return a[0];
        }
        if (callable.name == "_rebuild_tensor_v2" || callable.name == "_rebuild_tensor") {
            // (storage, storage_offset, size, stride[, requires_grad, backward_hooks[, metadata]])
            if (a.size() < 4) throw std::runtime_error(callable.name + " has too few arguments");
            if (a[0]->kind != Kind::extension || a[0]->extension_id % 2 != 0)
                throw std::runtime_error(callable.name + " is not given a storage");
            TensorRef t{.storage = a[0]->extension_id / 2, .offset = as_int(a[1], "a tensor's storage offset"),
                        .size = as_ints(a[2], "a tensor's size"), .stride = as_ints(a[3], "a tensor's stride")};
            if (t.size.size() != t.stride.size()) throw std::runtime_error("a tensor's size and stride differ in length");
            tensors.push_back(std::move(t));
            PickleObject* v = arena.make(Kind::extension);
            v->extension_id = 2 * int64_t(tensors.size() - 1) + 1;
            return v;
        }
        throw std::runtime_error("refuses to call " + callable.text + "." + callable.name);
    }

    // ('storage', torch.FloatStorage, key, location, numel[, view_metadata]): the second form is
    // the legacy format's, whose view_metadata, when not None, is (view_key, offset, view_numel).
    PickleObject* persistent_load(PickleArena& arena, const PickleObject& pid) override {
        const auto& a = pid.items;
        if (pid.kind != Kind::tuple || a.size() < 5 || as_string(a[0], "a persistent id's tag") != "storage")
            throw std::runtime_error("a persistent id is not a storage's");
        if (a[1]->kind != Kind::global || a[1]->text != "torch" || !storage_types().count(a[1]->name))
            throw std::runtime_error("a storage's type is not one of torch's typed storages");
        StorageRef s{.key = as_string(a[2], "a storage's key"), .type = storage_types().at(a[1]->name),
                     .numel = as_int(a[4], "a storage's size")};
        if (s.numel < 0) throw std::runtime_error("a storage has a negative size");
        s.view_numel = s.numel;
        if (a.size() > 5 && a[5]->kind != Kind::none) {
            const auto& view = a[5]->items;
            if (a[5]->kind != Kind::tuple || view.size() != 3) throw std::runtime_error("a storage view is malformed");
            s.view_offset = as_int(view[1], "a storage view's offset");
            s.view_numel = as_int(view[2], "a storage view's size");
            if (s.view_offset < 0 || s.view_numel < 0 || s.view_offset > s.numel || s.view_numel > s.numel - s.view_offset)
                throw std::runtime_error("a storage view lies outside its storage");
        }
        auto known = storage_by_key.find(s.key);
        if (known != storage_by_key.end()) {
            const StorageRef& k = storages[size_t(known->second)];
            if (std::strcmp(k.type.dtype, s.type.dtype) != 0 || k.numel != s.numel)
                throw std::runtime_error("storage '" + s.key + "' is named with two types or sizes");
        } else {
            storage_by_key[s.key] = int64_t(storages.size());
        }
        storages.push_back(s);
        PickleObject* v = arena.make(Kind::extension);
        v->extension_id = 2 * int64_t(storages.size() - 1);
        return v;
    }

    static bool is_tensor(const PickleObject* v) { return v->kind == Kind::extension && v->extension_id % 2 == 1; }
};

std::vector<std::byte> read_whole_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary | std::ios::ate);
    if (!in) throw std::runtime_error("cannot open '" + path + "': " + std::strerror(errno));
    std::vector<std::byte> bytes(size_t(in.tellg()));
    in.seekg(0);
    in.read(reinterpret_cast<char*>(bytes.data()), std::streamsize(bytes.size()));
    if (!in) throw std::runtime_error("cannot read '" + path + "'");
    return bytes;
}

// libarchive's reason for its last failure, which it does not always give.
std::string archive_reason(archive* a) {
    const char* why = archive_error_string(a);
    return why ? why : "unreadable";
}

// Every entry of a zip archive held in memory. torch.save stores its entries uncompressed, so an
// archive that inflates to much more than its own size is not one of its (a zip bomb, perhaps).
std::map<std::string, std::vector<std::byte>> zip_entries(const std::vector<std::byte>& file) {
    using Reader = std::unique_ptr<archive, int (*)(archive*)>;
    Reader in(archive_read_new(), archive_read_free);
    archive_read_support_format_zip(in.get());
    if (archive_read_open_memory(in.get(), file.data(), file.size()) != ARCHIVE_OK)
        throw std::runtime_error("not a readable zip archive: " + archive_reason(in.get()));
    const uint64_t budget = 2 * uint64_t(file.size()) + (1u << 20);
    uint64_t total = 0;
    std::map<std::string, std::vector<std::byte>> entries;
    for (;;) {
        archive_entry* entry = nullptr;
        const int r = archive_read_next_header(in.get(), &entry);
        if (r == ARCHIVE_EOF) break;
        if (r != ARCHIVE_OK) throw std::runtime_error("damaged zip archive: " + archive_reason(in.get()));
        const char* name = archive_entry_pathname(entry);
        if (!name) throw std::runtime_error("damaged zip archive: an entry without a name");
        std::vector<std::byte>& data = entries[name];
        std::byte block[1 << 16];
        for (;;) {
            const la_ssize_t n = archive_read_data(in.get(), block, sizeof block);
            if (n < 0) throw std::runtime_error("damaged zip archive: " + archive_reason(in.get()));
            if (n == 0) break;
            total += uint64_t(n);
            if (total > budget) throw std::runtime_error("the archive inflates to far more than its size: not torch.save's");
            data.insert(data.end(), block, block + n);
        }
    }
    return entries;
}

// The raw bytes a legacy file's magic number pickles to (LONG1): 0x1950a86a20f9469cfc6c.
const std::string kLegacyMagic("\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19", 10);
constexpr int64_t kLegacyProtocol = 1001;

// Rules for the legacy format's header pickles: plain values only.
class PlainRules : public UnpickleRules {
public:
    bool allows_global(const std::string&, const std::string&) const override { return false; }
    PickleObject* call(PickleArena&, const PickleObject&, const PickleObject&) override {
        throw std::runtime_error("calls code");
    }
    PickleObject* persistent_load(PickleArena&, const PickleObject&) override {
        throw std::runtime_error("refers to a storage");
    }
};

// A storage's elements as one contiguous tensor: gathers size/stride/offset, checking every
// element it reads lies inside the storage.
TorchTensor gather(const TensorRef& t, const StorageRef& s, const std::vector<std::byte>& storage) {
    const size_t es = s.type.element_size;
    TorchTensor out{.dtype = s.type.dtype, .shape = t.size, .data = {}};
    if (t.offset < 0) throw std::runtime_error("a tensor has a negative storage offset");
    int64_t numel = 1, last = t.offset;  // the highest element index it reads
    for (size_t d = 0; d < t.size.size(); ++d) {
        if (t.size[d] < 0 || t.stride[d] < 0) throw std::runtime_error("a tensor has a negative size or stride");
        if (t.size[d] == 0) numel = 0;
        else if (numel > 0) {
            if (t.size[d] > (int64_t(1) << 40) / numel) throw std::runtime_error("a tensor is absurdly large");
            numel *= t.size[d];
            if (t.stride[d] > 0 && (t.size[d] - 1) > ((int64_t(1) << 50) - last) / t.stride[d])
                throw std::runtime_error("a tensor reads far outside its storage");
            last += (t.size[d] - 1) * t.stride[d];
        }
    }
    if (numel > 0 && last >= s.view_numel)
        throw std::runtime_error("a tensor reads element " + std::to_string(last) + " of a storage of " +
                                 std::to_string(s.view_numel));
    if (uint64_t(numel) * es > (uint64_t(1) << 34)) throw std::runtime_error("a tensor is absurdly large");
    out.data.resize(size_t(numel) * es);
    const std::byte* base = storage.data() + size_t(s.view_offset) * es;
    const size_t rank = t.size.size();
    std::vector<int64_t> index(rank, 0);
    for (int64_t i = 0; i < numel; ++i) {  // row-major walk; fast enough for checkpoints
        int64_t at = t.offset;
        for (size_t d = 0; d < rank; ++d) at += index[d] * t.stride[d];
        std::memcpy(out.data.data() + size_t(i) * es, base + size_t(at) * es, es);
        for (size_t d = rank; d-- > 0;) {
            if (++index[d] < t.size[d]) break;
            index[d] = 0;
        }
    }
    return out;
}

}  // namespace

TorchFile::TorchFile(const std::string& path) : path_(path) { read(read_whole_file(path)); }

TorchFile::TorchFile(std::string path, const std::vector<std::byte>& bytes) : path_(std::move(path)) { read(bytes); }

void TorchFile::read(const std::vector<std::byte>& file) {
    const std::string what = "'" + path_ + "'";
    auto starts_with = [&](const char* magic, size_t n) {
        return file.size() >= n && std::memcmp(file.data(), magic, n) == 0;
    };
    TorchRules rules;
    std::map<std::string, std::vector<std::byte>> storage_bytes;
    try {
        if (starts_with("PK\x03\x04", 4)) {
            zip_ = true;
            std::map<std::string, std::vector<std::byte>> entries = zip_entries(file);
            // Every entry lies in one folder, named after the file torch.save wrote.
            std::string folder;
            for (const auto& [name, data] : entries) {
                const size_t slash = name.find('/');
                if (slash != std::string::npos && name.substr(slash) == "/data.pkl") folder = name.substr(0, slash + 1);
            }
            if (folder.empty()) throw std::runtime_error("a zip archive without <name>/data.pkl: not torch.save's");
            auto order = entries.find(folder + "byteorder");
            if (order != entries.end() &&
                std::string(reinterpret_cast<const char*>(order->second.data()), order->second.size()) != "little")
                throw std::runtime_error("saved on a big-endian machine, which is not supported");
            const std::vector<std::byte>& pickle = entries.at(folder + "data.pkl");
            root_ = unpickle(pickle, rules, arena_, "its data.pkl").value;
            for (const auto& [key, index] : rules.storage_by_key) {
                auto it = entries.find(folder + "data/" + key);
                if (it == entries.end()) throw std::runtime_error("storage '" + key + "' is missing (truncated?)");
                storage_bytes[key] = std::move(it->second);
            }
        } else if (starts_with("\x80", 1)) {
            PlainRules plain;
            std::span<const std::byte> rest(file);
            auto next = [&](UnpickleRules& r, const char* part) {
                const Unpickled u = unpickle(rest, r, arena_, part);
                rest = rest.subspan(u.bytes_read);
                return u.value;
            };
            const PickleObject* magic = next(plain, "its magic number");
            if (magic->kind != Kind::big_integer || magic->text != kLegacyMagic)
                throw std::runtime_error("a pickle, but not a PyTorch checkpoint (no torch.save magic number)");
            const PickleObject* protocol = next(plain, "its protocol version");
            if (protocol->kind != Kind::integer || protocol->integer != kLegacyProtocol)
                throw std::runtime_error("of an unknown torch.save protocol");
            const PickleObject* info = next(plain, "its system information");
            const PickleObject* little = info->find("little_endian");
            if (little && little->kind == Kind::boolean && little->integer == 0)
                throw std::runtime_error("saved on a big-endian machine, which is not supported");
            root_ = next(rules, "its object");
            const PickleObject* keys = next(plain, "its storage keys");
            if (keys->kind != Kind::list) throw std::runtime_error("its storage keys are not a list");
            for (const PickleObject* k : keys->items) {
                const std::string& key = as_string(k, "a storage key");
                auto known = rules.storage_by_key.find(key);
                if (known == rules.storage_by_key.end())
                    throw std::runtime_error("storage '" + key + "' is stored but never used");
                const StorageRef& s = rules.storages[size_t(known->second)];
                if (rest.size() < 8) throw std::runtime_error("truncated before storage '" + key + "'");
                int64_t numel = 0;
                std::memcpy(&numel, rest.data(), 8);
                rest = rest.subspan(8);
                if (numel != s.numel) throw std::runtime_error("storage '" + key + "' has another size than its tensors say");
                if (uint64_t(numel) > rest.size() / s.type.element_size)
                    throw std::runtime_error("truncated in storage '" + key + "'");
                const size_t bytes = size_t(numel) * s.type.element_size;
                storage_bytes[key].assign(rest.begin(), rest.begin() + std::ptrdiff_t(bytes));
                rest = rest.subspan(bytes);
            }
        } else {
            throw std::runtime_error("not a PyTorch checkpoint (neither a zip archive nor a pickle)");
        }
        for (const auto& [key, index] : rules.storage_by_key) {
            auto it = storage_bytes.find(key);
            if (it == storage_bytes.end()) throw std::runtime_error("storage '" + key + "' is missing (truncated?)");
            const StorageRef& s = rules.storages[size_t(index)];
            if (it->second.size() != size_t(s.numel) * s.type.element_size)
                throw std::runtime_error("storage '" + key + "' holds " + std::to_string(it->second.size()) +
                                         " bytes, not the " + std::to_string(s.numel) + " elements it is said to");
        }
        for (const TensorRef& t : rules.tensors) {
            const StorageRef& s = rules.storages[size_t(t.storage)];
            tensors_.push_back(gather(t, s, storage_bytes.at(s.key)));
        }
    } catch (const std::runtime_error& e) {
        throw std::runtime_error(what + ": " + e.what());
    }
}

const TorchTensor* TorchFile::tensor(const PickleObject& value) const {
    if (value.kind != PickleObject::Kind::extension || value.extension_id % 2 != 1) return nullptr;
    return &tensors_[size_t(value.extension_id / 2)];
}

}  // namespace dn
