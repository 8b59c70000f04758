// defines: PickleObject, PickleArena, UnpickleRules, unpickle (a restricted reader of Python's pickle)
//
// PyTorch's checkpoints are pickles, and a pickle is a program: its GLOBAL and REDUCE opcodes
// import and call any Python function (os.system as easily as OrderedDict). This reader runs the
// pickle machine over data only. Every global a pickle names, every call it makes and every
// persistent id it loads is put to an UnpickleRules, which builds the few objects it knows and
// refuses everything else; no opcode that builds an arbitrary object (INST, OBJ, NEWOBJ, EXT)
// is accepted at all.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace dn {

// One value of the pickle machine. Objects are owned by a PickleArena and refer to each other by
// pointer, so a pickle that makes a cycle (a list that holds itself) leaks nothing.
struct PickleObject {
    enum class Kind { none, boolean, integer, big_integer, floating, string, bytes, tuple, list, dict, global, extension };
    Kind kind = Kind::none;
    int64_t integer = 0;                     // boolean, integer
    double floating = 0.0;                   // floating
    std::string text;                        // string, bytes, big_integer (little-endian two's complement), global's module
    std::string name;                        // global's name
    std::vector<PickleObject*> items;        // tuple, list
    std::vector<std::pair<PickleObject*, PickleObject*>> entries;  // dict, in insertion order
    int64_t extension_id = -1;               // extension: an index into what the rules built (a tensor, a storage)

    bool is(Kind k) const { return kind == k; }
    const PickleObject* find(const std::string& key) const;  // a dict's value under a string key, or null
};

class PickleArena {
public:
    PickleObject* make(PickleObject::Kind kind);

private:
    std::vector<std::unique_ptr<PickleObject>> objects_;
};

// What a pickle may import, call and load. Each method throws std::runtime_error to refuse.
class UnpickleRules {
public:
    virtual ~UnpickleRules() = default;
    // GLOBAL module name: whether the pickle may name it (refused ones never reach call()).
    virtual bool allows_global(const std::string& module, const std::string& name) const = 0;
    // REDUCE: callable(*args), where callable is an allowed global.
    virtual PickleObject* call(PickleArena& arena, const PickleObject& callable, const PickleObject& args) = 0;
    // BINPERSID: the object a persistent id stands for (PyTorch: a tensor's storage).
    virtual PickleObject* persistent_load(PickleArena& arena, const PickleObject& pid) = 0;
    // BUILD: object.__setstate__(state). The default accepts it on a dict and ignores the state
    // (an OrderedDict's attributes, such as a state_dict's _metadata) and refuses it elsewhere.
    virtual void build(PickleObject& object, const PickleObject& state);
};

struct Unpickled {
    PickleObject* value = nullptr;
    size_t bytes_read = 0;  // up to and including STOP: a file may hold several pickles in a row
};

// Reads one pickle (protocols 2 to 5, and the binary opcodes of 0 and 1) from the start of
// bytes. A malformed, truncated or refused pickle is a std::runtime_error whose message says
// why, prefixed with `what` (the file's name).
Unpickled unpickle(std::span<const std::byte> bytes, UnpickleRules& rules, PickleArena& arena, const std::string& what);

}  // namespace dn
