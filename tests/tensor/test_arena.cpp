// MemoryPlan's placement: regions end to end, except where their lifetimes let them share bytes.
#include "tensor/arena.h"

#include <gtest/gtest.h>

namespace dn {
namespace {

TEST(MemoryPlan, RegionsForTheWholeStepLieEndToEndOnCacheLines) {
    MemoryPlan m;
    EXPECT_EQ(m.reserve("a", 100), 0u);
    EXPECT_EQ(m.reserve("b", 64), 128u);
    EXPECT_EQ(m.reserve_floats("c", 3), 192u);
    EXPECT_EQ(m.total_bytes(), 256u);
    ASSERT_EQ(m.regions().size(), 3u);
    EXPECT_EQ(m.regions()[0].bytes, 100u);  // as asked, not padded
}

TEST(MemoryPlan, RegionsWithDisjointLifetimesShareBytes) {
    MemoryPlan m;
    m.reserve("whole", 64);
    EXPECT_EQ(m.reserve("early", 256, {0, 3}), 64u);
    EXPECT_EQ(m.reserve("late", 128, {4, 9}), 64u);     // early is over by then
    EXPECT_EQ(m.reserve("later", 128, {6, 9}), 192u);   // late still holds 64..192; early's rest is free
    EXPECT_EQ(m.reserve("overlapping", 64, {3, 4}), 320u);  // meets early and late, not later
    EXPECT_EQ(m.total_bytes(), 384u);
}

TEST(MemoryPlan, ARegionTakesTheFirstGapThatFits) {
    MemoryPlan m;
    m.reserve("a", 64, {0, 1});
    m.reserve("b", 64, {0, 9});
    m.reserve("c", 128, {0, 1});
    // At position 5 only b is alive: the 64 bytes before it fit 64, not 128, which go after it.
    EXPECT_EQ(m.reserve("small", 64, {5, 5}), 0u);
    EXPECT_EQ(m.reserve("large", 128, {6, 6}), 128u);
    EXPECT_EQ(m.total_bytes(), 256u);
}

TEST(Lifetime, OverlapsIncludesTheEnds) {
    EXPECT_TRUE((Lifetime{0, 3}).overlaps({3, 5}));
    EXPECT_FALSE((Lifetime{0, 3}).overlaps({4, 5}));
    EXPECT_TRUE((Lifetime{}).overlaps({7, 7}));
}

}  // namespace
}  // namespace dn
