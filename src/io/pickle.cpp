#include "io/pickle.h"

#include <cstring>
#include <stdexcept>
#include <unordered_map>

namespace dn {

using Kind = PickleObject::Kind;

const PickleObject* PickleObject::find(const std::string& key) const {
    if (kind != Kind::dict) return nullptr;
    for (const auto& [k, v] : entries)
        if (k->kind == Kind::string && k->text == key) return v;
    return nullptr;
}

PickleObject* PickleArena::make(Kind kind) {
    objects_.push_back(std::make_unique<PickleObject>());
    objects_.back()->kind = kind;
    return objects_.back().get();
}

void UnpickleRules::build(PickleObject& object, const PickleObject& state) {
    if (object.kind == Kind::dict) return;
    throw std::runtime_error("refuses to set the state of anything but a dict");
}

namespace {

// The opcodes of pickletools, by protocol.
enum Op : uint8_t {
    MARK = '(', STOP = '.', POP = '0', POP_MARK = '1', DUP = '2', BININT = 'J', BININT1 = 'K', BININT2 = 'M',
    NONE = 'N', BINPERSID = 'Q', REDUCE = 'R', BINSTRING = 'T', SHORT_BINSTRING = 'U', BINUNICODE = 'X', APPEND = 'a',
    BUILD = 'b', GLOBAL = 'c', DICT = 'd', EMPTY_DICT = '}', APPENDS = 'e', BINGET = 'h', LONG_BINGET = 'j',
    LIST = 'l', EMPTY_LIST = ']', BINPUT = 'q', LONG_BINPUT = 'r', SETITEM = 's', TUPLE = 't', EMPTY_TUPLE = ')',
    SETITEMS = 'u', BINFLOAT = 'G',
    PROTO = 0x80, TUPLE1 = 0x85, TUPLE2 = 0x86, TUPLE3 = 0x87, NEWTRUE = 0x88, NEWFALSE = 0x89, LONG1 = 0x8a,
    LONG4 = 0x8b,                                             // protocol 2
    BINBYTES = 'B', SHORT_BINBYTES = 'C',                     // protocol 3
    SHORT_BINUNICODE = 0x8c, BINUNICODE8 = 0x8d, BINBYTES8 = 0x8e, EMPTY_SET = 0x8f, ADDITEMS = 0x90,
    FROZENSET = 0x91, STACK_GLOBAL = 0x93, MEMOIZE = 0x94, FRAME = 0x95,  // protocol 4
    BYTEARRAY8 = 0x96,                                        // protocol 5
};

class Machine {
public:
    Machine(std::span<const std::byte> bytes, UnpickleRules& rules, PickleArena& arena)
        : bytes_(bytes), rules_(rules), arena_(arena) {}

    Unpickled run() {
        for (;;) {
            const uint8_t op = u8();
            if (op == STOP) {
                if (stack_.size() != 1 || !marks_.empty()) fail("ends with " + std::to_string(stack_.size()) + " values on its stack");
                return {stack_.back(), pos_};
            }
            step(op);
        }
    }

private:
    [[noreturn]] void fail(const std::string& why) const {
        throw std::runtime_error("at byte " + std::to_string(pos_) + ": " + why);
    }

    // Reading, never past the end: a truncated pickle fails here, before anything is allocated.
    const std::byte* take(uint64_t n) {
        if (n > bytes_.size() - pos_) fail("truncated (needs " + std::to_string(n) + " more bytes, has " +
                                           std::to_string(bytes_.size() - pos_) + ")");
        const std::byte* p = bytes_.data() + pos_;
        pos_ += size_t(n);
        return p;
    }
    uint64_t little_endian(int n) {
        const std::byte* p = take(uint64_t(n));
        uint64_t v = 0;
        for (int i = 0; i < n; ++i) v |= uint64_t(std::to_integer<uint8_t>(p[i])) << (8 * i);
        return v;
    }
    uint8_t u8() { return uint8_t(little_endian(1)); }
    std::string chars(uint64_t n) {
        const std::byte* p = take(n);
        return std::string(reinterpret_cast<const char*>(p), size_t(n));
    }
    std::string line() {
        const size_t begin = pos_;
        while (pos_ < bytes_.size() && bytes_[pos_] != std::byte{'\n'}) ++pos_;
        if (pos_ == bytes_.size()) fail("truncated in a GLOBAL's name");
        ++pos_;
        return std::string(reinterpret_cast<const char*>(bytes_.data() + begin), pos_ - begin - 1);
    }

    // The stack, and the marks that split it (the "metastack" of Python's unpickler).
    PickleObject* pop() {
        if (stack_.size() <= (marks_.empty() ? 0 : marks_.back())) fail("pops an empty stack");
        PickleObject* v = stack_.back();
        stack_.pop_back();
        return v;
    }
    PickleObject* top() {
        if (stack_.size() <= (marks_.empty() ? 0 : marks_.back())) fail("reads an empty stack");
        return stack_.back();
    }
    std::vector<PickleObject*> pop_to_mark() {
        if (marks_.empty()) fail("has no MARK to pop to");
        const size_t mark = marks_.back();
        marks_.pop_back();
        std::vector<PickleObject*> items(stack_.begin() + std::ptrdiff_t(mark), stack_.end());
        stack_.resize(mark);
        return items;
    }
    PickleObject* expect(PickleObject* v, Kind kind, const char* what) {
        if (v->kind != kind) fail(std::string("expects ") + what);
        return v;
    }
    PickleObject* value(Kind kind) {
        PickleObject* v = arena_.make(kind);
        stack_.push_back(v);
        return v;
    }
    void integer(int64_t v) { value(Kind::integer)->integer = v; }
    void text(Kind kind, uint64_t n) { value(kind)->text = chars(n); }
    void tuple(std::vector<PickleObject*> items) { value(Kind::tuple)->items = std::move(items); }
    void add_pairs(PickleObject* dict, const std::vector<PickleObject*>& items) {
        expect(dict, Kind::dict, "a dict");
        if (items.size() % 2) fail("sets a dict item without a value");
        for (size_t i = 0; i < items.size(); i += 2) dict->entries.emplace_back(items[i], items[i + 1]);
    }
    void global(const std::string& module, const std::string& name) {
        if (!rules_.allows_global(module, name))
            fail("refuses to load the global " + module + "." + name +
                 ": a checkpoint holds tensors and dicts, not code (a file that names other code is not loaded)");
        PickleObject* g = value(Kind::global);
        g->text = module;
        g->name = name;
    }
    void memo_put(uint64_t index) { memo_[index] = top(); }
    void memo_get(uint64_t index) {
        auto it = memo_.find(index);
        if (it == memo_.end()) fail("reads memo entry " + std::to_string(index) + ", never stored");
        stack_.push_back(it->second);
    }

    void step(uint8_t op) {
        switch (op) {
        case PROTO: if (u8() > 5) fail("is of a pickle protocol newer than 5"); break;
        case FRAME: little_endian(8); break;  // a hint for buffered readers; the opcodes follow as usual
        case MARK: marks_.push_back(stack_.size()); break;
        case POP: pop(); break;
        case POP_MARK: pop_to_mark(); break;
        case DUP: stack_.push_back(top()); break;
        case NONE: value(Kind::none); break;
        case NEWTRUE: value(Kind::boolean)->integer = 1; break;
        case NEWFALSE: value(Kind::boolean)->integer = 0; break;
        case BININT: integer(int32_t(uint32_t(little_endian(4)))); break;
        case BININT1: integer(int64_t(little_endian(1))); break;
        case BININT2: integer(int64_t(little_endian(2))); break;
        case LONG1: long_integer(u8()); break;
        case LONG4: {
            const int32_t n = int32_t(uint32_t(little_endian(4)));
            if (n < 0) fail("has a negative LONG4 length");
            long_integer(uint64_t(n));
            break;
        }
        case BINFLOAT: {  // big-endian, unlike everything else
            const std::byte* p = take(8);
            uint64_t bits = 0;
            for (int i = 0; i < 8; ++i) bits = (bits << 8) | std::to_integer<uint8_t>(p[i]);
            double d;
            std::memcpy(&d, &bits, 8);
            value(Kind::floating)->floating = d;
            break;
        }
        // Python 2's str (in torchvision's oldest weights) reads as str, as torch.load reads it.
        case SHORT_BINSTRING: text(Kind::string, u8()); break;
        case BINSTRING: {
            const int32_t n = int32_t(uint32_t(little_endian(4)));
            if (n < 0) fail("has a negative string length");
            text(Kind::string, uint64_t(n));
            break;
        }
        case SHORT_BINUNICODE: text(Kind::string, u8()); break;
        case BINUNICODE: text(Kind::string, little_endian(4)); break;
        case BINUNICODE8: text(Kind::string, little_endian(8)); break;
        case SHORT_BINBYTES: text(Kind::bytes, u8()); break;
        case BINBYTES: text(Kind::bytes, little_endian(4)); break;
        case BINBYTES8: case BYTEARRAY8: text(Kind::bytes, little_endian(8)); break;
        case EMPTY_TUPLE: tuple({}); break;
        case TUPLE1: { PickleObject* a = pop(); tuple({a}); break; }
        case TUPLE2: { PickleObject* b = pop(); PickleObject* a = pop(); tuple({a, b}); break; }
        case TUPLE3: { PickleObject* c = pop(); PickleObject* b = pop(); PickleObject* a = pop(); tuple({a, b, c}); break; }
        case TUPLE: tuple(pop_to_mark()); break;
        case EMPTY_LIST: case EMPTY_SET: value(Kind::list); break;  // a set is read as the list of its items
        case LIST: case FROZENSET: { std::vector<PickleObject*> items = pop_to_mark(); value(Kind::list)->items = std::move(items); break; }
        case APPEND: { PickleObject* v = pop(); expect(top(), Kind::list, "a list to append to")->items.push_back(v); break; }
        case APPENDS: case ADDITEMS: {
            std::vector<PickleObject*> items = pop_to_mark();
            PickleObject* list = expect(top(), Kind::list, "a list to append to");
            list->items.insert(list->items.end(), items.begin(), items.end());
            break;
        }
        case EMPTY_DICT: value(Kind::dict); break;
        case DICT: { std::vector<PickleObject*> items = pop_to_mark(); add_pairs(value(Kind::dict), items); break; }
        case SETITEM: { PickleObject* v = pop(); PickleObject* k = pop(); add_pairs(top(), {k, v}); break; }
        case SETITEMS: { std::vector<PickleObject*> items = pop_to_mark(); add_pairs(top(), items); break; }
        case BINPUT: memo_put(u8()); break;
        case LONG_BINPUT: memo_put(little_endian(4)); break;
        case MEMOIZE: memo_put(memo_.size()); break;
        case BINGET: memo_get(u8()); break;
        case LONG_BINGET: memo_get(little_endian(4)); break;
        case GLOBAL: { std::string module = line(); global(module, line()); break; }
        case STACK_GLOBAL: {
            PickleObject* name = expect(pop(), Kind::string, "a string for STACK_GLOBAL's name");
            PickleObject* module = expect(pop(), Kind::string, "a string for STACK_GLOBAL's module");
            global(module->text, name->text);
            break;
        }
        case REDUCE: {
            PickleObject* args = expect(pop(), Kind::tuple, "a tuple of arguments");
            PickleObject* callable = expect(pop(), Kind::global, "a global to call");
            stack_.push_back(call([&] { return rules_.call(arena_, *callable, *args); }));
            break;
        }
        case BUILD: {
            PickleObject* state = pop();
            PickleObject* object = top();
            call([&] { rules_.build(*object, *state); return object; });
            break;
        }
        case BINPERSID: {
            PickleObject* pid = pop();
            stack_.push_back(call([&] { return rules_.persistent_load(arena_, *pid); }));
            break;
        }
        default: {
            char hex[8];
            std::snprintf(hex, sizeof hex, "0x%02x", op);
            fail(std::string("opcode ") + hex + " is not accepted (it builds arbitrary objects, or is not a pickle's)");
        }
        }
    }

    // The rules' errors, placed at the opcode that raised them.
    template <class F>
    PickleObject* call(F&& f) {
        try {
            return f();
        } catch (const std::runtime_error& e) {
            fail(e.what());
        }
    }

    void long_integer(uint64_t n) {
        const std::string raw = chars(n);  // little-endian two's complement
        if (n > 8) {
            value(Kind::big_integer)->text = raw;
            return;
        }
        uint64_t v = 0;
        for (size_t i = 0; i < n; ++i) v |= uint64_t(uint8_t(raw[i])) << (8 * i);
        if (n > 0 && n < 8 && (uint8_t(raw[n - 1]) & 0x80)) v |= ~uint64_t(0) << (8 * n);  // sign-extend
        integer(int64_t(v));
    }

    std::span<const std::byte> bytes_;
    size_t pos_ = 0;
    UnpickleRules& rules_;
    PickleArena& arena_;
    std::vector<PickleObject*> stack_;
    std::vector<size_t> marks_;
    std::unordered_map<uint64_t, PickleObject*> memo_;
};

}  // namespace

Unpickled unpickle(std::span<const std::byte> bytes, UnpickleRules& rules, PickleArena& arena, const std::string& what) {
    try {
        return Machine(bytes, rules, arena).run();
    } catch (const std::runtime_error& e) {
        throw std::runtime_error(what + ": " + e.what());
    }
}

}  // namespace dn
