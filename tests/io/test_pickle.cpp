// The restricted pickle machine on hand-written opcodes: what it builds, and what it refuses.
// Whole PyTorch files, written by torch.save itself, are checked by check_torch_import.py.
#include "io/pickle.h"

#include <gtest/gtest.h>

#include <string>

namespace dn {
namespace {

using Kind = PickleObject::Kind;

// Allows one global, collections.OrderedDict, and calls it.
class DictRules : public UnpickleRules {
public:
    bool allows_global(const std::string& module, const std::string& name) const override {
        return module == "collections" && name == "OrderedDict";
    }
    PickleObject* call(PickleArena& arena, const PickleObject&, const PickleObject&) override {
        return arena.make(Kind::dict);
    }
    PickleObject* persistent_load(PickleArena&, const PickleObject&) override {
        throw std::runtime_error("no storages here");
    }
};

// Opcodes written as hex, so that no escape sequence runs into the next character.
std::string hex(const std::string& digits) {
    std::string out;
    for (size_t i = 0; i + 1 < digits.size(); i += 2) out += char(std::stoi(digits.substr(i, 2), nullptr, 16));
    return out;
}

struct Result {
    PickleObject* value = nullptr;
    std::string error;
};

Result read(const std::string& bytes, PickleArena& arena) {
    DictRules rules;
    try {
        return {unpickle({reinterpret_cast<const std::byte*>(bytes.data()), bytes.size()}, rules, arena, "test").value, ""};
    } catch (const std::runtime_error& e) {
        return {nullptr, e.what()};
    }
}

TEST(Pickle, PlainValues) {
    PickleArena arena;
    // pickle.dumps({'a': (1, -2, 300, 'x', True, None, 2.5)}, protocol=2)
    const Result r = read(hex("80027d71005801000000617101284b014afeffffff4d2c015801000000787102884e4740040000000000007471"
                              "03732e"), arena);
    ASSERT_TRUE(r.value) << r.error;
    const PickleObject* t = r.value->find("a");
    ASSERT_TRUE(t && t->is(Kind::tuple));
    ASSERT_EQ(t->items.size(), 7u);
    EXPECT_EQ(t->items[0]->integer, 1);
    EXPECT_EQ(t->items[1]->integer, -2);
    EXPECT_EQ(t->items[2]->integer, 300);
    EXPECT_EQ(t->items[3]->text, "x");
    EXPECT_TRUE(t->items[4]->is(Kind::boolean) && t->items[4]->integer == 1);
    EXPECT_TRUE(t->items[5]->is(Kind::none));
    EXPECT_EQ(t->items[6]->floating, 2.5);
}

TEST(Pickle, LongIntegersSignExtendAndBigOnesStayRaw) {
    PickleArena arena;
    EXPECT_EQ(read(hex("80028a02ff7f2e"), arena).value->integer, 32767);  // LONG1, 2 bytes
    EXPECT_EQ(read(hex("80028a01802e"), arena).value->integer, -128);     // LONG1, 1 byte, negative
    const Result big = read(hex("80028a09") + "123456789" + hex("2e"), arena);  // 9 bytes: beyond int64
    ASSERT_TRUE(big.value) << big.error;
    EXPECT_TRUE(big.value->is(Kind::big_integer));
    EXPECT_EQ(big.value->text, "123456789");
}

TEST(Pickle, MemoSharesObjectsAndCyclesAreHarmless) {
    PickleArena arena;
    const Result r = read(hex("80025d71006800612e"), arena);  // l = []; l.append(l)
    ASSERT_TRUE(r.value) << r.error;
    ASSERT_EQ(r.value->items.size(), 1u);
    EXPECT_EQ(r.value->items[0], r.value);  // the arena owns both ends: nothing leaks
}

TEST(Pickle, CallsOnlyWhatTheRulesAllow) {
    PickleArena arena;
    const Result ok = read(hex("8002") + "ccollections\nOrderedDict\n" + hex("29522e"), arena);  // OrderedDict()
    ASSERT_TRUE(ok.value) << ok.error;
    EXPECT_TRUE(ok.value->is(Kind::dict));
    const Result system = read(hex("8002") + "cposix\nsystem\n" + hex("5802000000") + "ls" + hex("85522e"), arena);
    EXPECT_NE(system.error.find("refuses to load the global posix.system"), std::string::npos) << system.error;
}

TEST(Pickle, RefusesWhatBuildsArbitraryObjectsOrIsMalformed) {
    PickleArena arena;
    struct Case {
        std::string bytes, words;
    };
    const std::string ordered_dict = "ccollections\nOrderedDict\n";
    const Case cases[] = {
        {hex("800228") + ordered_dict + "o.", "opcode 0x6f"},               // OBJ
        {hex("800228") + "i__main__\nX\n.", "opcode 0x69"},                 // INST
        {hex("800229812e"), "opcode 0x81"},                                 // NEWOBJ
        {hex("800258ffffff7f") + "abc.", "truncated"},                      // a string longer than the file
        {hex("800268052e"), "memo entry 5"},                                // BINGET of nothing stored
        {hex("80024b01732e"), "pops an empty stack"},                       // SETITEM without a dict
        {hex("80024b014b022e"), "2 values on its stack"},
        {hex("80024b01"), "truncated"},                                     // no STOP
        {hex("80024b014b02612e"), "expects a list"},                        // APPEND to an integer
        {hex("8002") + ordered_dict + hex("4b01522e"), "expects a tuple"},  // REDUCE without a tuple
        {hex("80024b01512e"), "no storages here"},                          // BINPERSID, refused by the rules
        {hex("8006"), "newer than 5"},
    };
    for (const Case& c : cases) {
        const Result r = read(c.bytes, arena);
        EXPECT_FALSE(r.value);
        EXPECT_NE(r.error.find(c.words), std::string::npos) << "expected '" << c.words << "' in: " << r.error;
    }
}

}  // namespace
}  // namespace dn
