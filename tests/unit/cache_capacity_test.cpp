// The front-end's sizing policy (frontend/cache_capacity.h), on its own: plain data in,
// decisions out, with limits made up here so that every rule can be reached.
#include "frontend/cache_capacity.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace jsmalloc {
namespace {

// Classes 1..4: 16 B, 64 B, 1 KiB, 16 KiB; step 4, initial 4, max 64 (16 KiB: 16).
CapacityLimits Limits(size_t cap_bytes) {
  CapacityLimits lim;
  lim.cap_bytes = cap_bytes;
  const uint32_t sizes[] = {16, 64, 1024, 16384};
  for (size_t cls = 1; cls <= 4; ++cls) {
    lim.size[cls] = sizes[cls - 1];
    lim.step[cls] = 4;
    lim.initial[cls] = 4;
    lim.max[cls] = cls == 4 ? 16 : 64;
  }
  return lim;
}

// Every class empty: all its capacity is unused.
constexpr uint32_t kNoLengths[kNumClasses] = {};

size_t SumBytes(const CapacityLimits& lim, const CacheCapacity& c) {
  size_t bytes = 0;
  for (size_t cls = 0; cls < kNumClasses; ++cls) bytes += size_t{c.capacity[cls]} * lim.size[cls];
  return bytes;
}

// Misses until the policy says grow (after a refusal it waits longer), then the grow.
bool MissAndGrow(const CapacityLimits& lim, CacheCapacity* c, size_t cls, bool from_active,
                 ClassSet* shrunk) {
  for (uint32_t i = 0; i < (kMissesToGrow << kMaxRefusals); ++i) {
    if (CapacityNoteMiss(lim, c, cls, true))
      return CapacityGrow(lim, c, cls, from_active, kNoLengths, shrunk);
  }
  return false;
}

TEST(CacheCapacity, StartsAtInitial) {
  const CapacityLimits lim = Limits(1 << 20);
  CacheCapacity c;
  CapacityInit(lim, &c);
  for (size_t cls = 1; cls <= 4; ++cls) EXPECT_EQ(c.capacity[cls], 4u);
  EXPECT_EQ(c.capacity[5], 0u);
  EXPECT_EQ(c.capacity_bytes, SumBytes(lim, c));
}

TEST(CacheCapacity, OneMissDoesNotGrowRepeatedMissesDo) {
  const CapacityLimits lim = Limits(1 << 20);
  CacheCapacity c;
  CapacityInit(lim, &c);
  EXPECT_FALSE(CapacityNoteMiss(lim, &c, 2, true));
  EXPECT_TRUE(CapacityNoteMiss(lim, &c, 2, true));
  ClassSet shrunk;
  EXPECT_TRUE(CapacityGrow(lim, &c, 2, true, kNoLengths, &shrunk));
  EXPECT_EQ(c.capacity[2], 8u);
  EXPECT_EQ(shrunk.Count(), 0);
  // The count starts again after a grow.
  EXPECT_FALSE(CapacityNoteMiss(lim, &c, 2, true));
}

TEST(CacheCapacity, GrowsUpToItsMaxAndNoFurther) {
  const CapacityLimits lim = Limits(1 << 20);
  CacheCapacity c;
  CapacityInit(lim, &c);
  ClassSet shrunk;
  int grows = 0;
  for (int i = 0; i < 100; ++i) grows += MissAndGrow(lim, &c, 1, true, &shrunk) ? 1 : 0;
  EXPECT_EQ(c.capacity[1], 64u);
  EXPECT_EQ(grows, (64 - 4) / 4);
  EXPECT_FALSE(CapacityNoteMiss(lim, &c, 1, true)) << "at its max a class does not ask to grow";
  EXPECT_EQ(c.capacity_bytes, SumBytes(lim, c));
}

// Whatever the misses, the capacities never add up to more than the cap.
TEST(CacheCapacity, ByteCapIsNeverExceeded) {
  const size_t cap = 4 * 16384 + 64 * 1024;  // the initial capacities fit, not every max
  const CapacityLimits lim = Limits(cap);
  CacheCapacity c;
  CapacityInit(lim, &c);
  ASSERT_LE(c.capacity_bytes, cap);
  uint32_t seed = 12345;
  int grew = 0, refused = 0;
  for (int i = 0; i < 20000; ++i) {
    seed = seed * 1103515245u + 12345u;
    const size_t cls = 1 + (seed >> 16) % 4;
    ClassSet shrunk;
    if (CapacityNoteMiss(lim, &c, cls, true)) {
      if (CapacityGrow(lim, &c, cls, ((seed >> 8) & 1) != 0, kNoLengths, &shrunk)) {
        ++grew;
      } else {
        ++refused;
      }
    }
    if ((i % 500) == 499) {
      ClassSet used, holding, idle;
      CapacityDecayTick(lim, &c, used, holding, &idle);
    }
    ASSERT_LE(c.capacity_bytes, cap) << "after miss " << i;
    ASSERT_EQ(c.capacity_bytes, SumBytes(lim, c));
    for (size_t k = 1; k <= 4; ++k) ASSERT_LE(c.capacity[k], lim.max[k]);
  }
  EXPECT_GT(grew, 0);
  EXPECT_GT(refused, 0) << "the cap was never reached: the test proves nothing";
}

// Limits where class 3 (1 KiB) can grow to 64 objects beside the others' initial
// capacities and no further; c starts there, class 3 grown to the cap.
constexpr size_t kRoomForClass3 = 4 * 16 + 4 * 64 + 64 * 1024 + 4 * 16384;
void GrowClass3ToTheCap(const CapacityLimits& lim, CacheCapacity* c) {
  CapacityInit(lim, c);
  ClassSet shrunk;
  while (MissAndGrow(lim, c, 3, true, &shrunk)) {
  }
  ASSERT_EQ(shrunk.Count(), 0);
}

// At the cap, a class in use keeps its capacity against one that overflows; once a
// look found it idle it gives it up.
TEST(CacheCapacity, OverflowingClassTakesFromIdleClassesOnly) {
  const CapacityLimits lim = Limits(kRoomForClass3);
  CacheCapacity c;
  ASSERT_NO_FATAL_FAILURE(GrowClass3ToTheCap(lim, &c));
  ClassSet shrunk;
  ASSERT_EQ(c.capacity[3], 64u);  // class 3 took the room there was, exactly
  ASSERT_EQ(c.capacity_bytes, lim.cap_bytes);
  // A look that saw class 3's objects move: in use.
  ClassSet used, holding, idle;
  used.Assign(3, true);
  holding.Assign(3, true);
  CapacityDecayTick(lim, &c, used, holding, &idle);
  EXPECT_EQ(idle.Count(), 0);
  // Class 4 (16 KiB) keeps overflowing: classes 1 and 2 never missed, so they give up
  // their capacity, which is not enough; class 3 keeps its.
  EXPECT_FALSE(MissAndGrow(lim, &c, 4, false, &shrunk));
  EXPECT_EQ(c.capacity[3], 64u);
  EXPECT_EQ(c.capacity[4], 4u);
  EXPECT_TRUE(shrunk.Contains(1) && shrunk.Contains(2));
  EXPECT_FALSE(shrunk.Contains(3));
  // A look that saw class 3 left alone: back to its initial capacity, and handed back.
  used = ClassSet{};
  CapacityDecayTick(lim, &c, used, holding, &idle);
  EXPECT_TRUE(idle.Contains(3));
  EXPECT_EQ(c.capacity[3], lim.initial[3]);
  // Now class 4 grows, taking the rest of idle class 3's.
  shrunk = ClassSet{};
  EXPECT_TRUE(MissAndGrow(lim, &c, 4, false, &shrunk));
  EXPECT_TRUE(shrunk.Contains(3));
  EXPECT_EQ(c.capacity[3], 0u);
  EXPECT_EQ(c.capacity[4], 8u);
  EXPECT_LE(c.capacity_bytes, lim.cap_bytes);
  EXPECT_EQ(c.capacity_bytes, SumBytes(lim, c));
}

// At the cap, an overflowing class takes nothing from classes in use; one that ran dry
// takes a step from each in turn, never below their initial capacity.
TEST(CacheCapacity, ActiveClassesLoseOnlyToAClassThatRanDry) {
  const CapacityLimits lim = Limits(kRoomForClass3);
  CacheCapacity c;
  ASSERT_NO_FATAL_FAILURE(GrowClass3ToTheCap(lim, &c));
  ClassSet shrunk;
  ASSERT_EQ(c.capacity[3], 64u);
  for (size_t cls = 1; cls <= 4; ++cls) CapacityNoteMiss(lim, &c, cls, true);  // all in use
  EXPECT_FALSE(MissAndGrow(lim, &c, 2, false, &shrunk));
  EXPECT_EQ(shrunk.Count(), 0);
  EXPECT_EQ(c.capacity[3], 64u);
  EXPECT_TRUE(MissAndGrow(lim, &c, 2, true, &shrunk));
  EXPECT_TRUE(shrunk.Contains(3));
  EXPECT_EQ(c.capacity[2], 8u);
  EXPECT_EQ(c.capacity[3], 60u);  // one step of class 3 made room for one of class 2
  for (int i = 0; i < 50; ++i) {
    for (size_t cls = 1; cls <= 4; ++cls) CapacityNoteMiss(lim, &c, cls, true);
    MissAndGrow(lim, &c, 2, true, &shrunk);
  }
  EXPECT_EQ(c.capacity[2], 64u);
  EXPECT_GE(c.capacity[3], lim.initial[3]);
  EXPECT_LE(c.capacity_bytes, lim.cap_bytes);
  EXPECT_EQ(c.capacity_bytes, SumBytes(lim, c));
}

// Misses of cls until the policy says grow, then the grow, with classes holding
// `length` objects each.
bool MissAndGrowHolding(const CapacityLimits& lim, CacheCapacity* c, size_t cls,
                        const uint32_t* length, ClassSet* shrunk) {
  for (uint32_t i = 0; i < (kMissesToGrow << kMaxRefusals); ++i) {
    if (CapacityNoteMiss(lim, c, cls, true)) return CapacityGrow(lim, c, cls, true, length, shrunk);
  }
  return false;
}

// A class whose capacity went to another while it was idle, and that then runs dry
// while every other class is in use and full, gets its initial capacity back from the
// objects they hold above theirs (at 0, each of its mallocs would go to the middle
// tier until the next look); above its initial capacity it takes only unused room.
TEST(CacheCapacity, ClassRobbedWhileIdleGetsItsInitialCapacityBack) {
  const CapacityLimits lim = Limits(kRoomForClass3);
  CacheCapacity c;
  ASSERT_NO_FATAL_FAILURE(GrowClass3ToTheCap(lim, &c));
  ClassSet used, holding, idle;
  used.Assign(3, true);
  holding.Assign(3, true);
  CapacityDecayTick(lim, &c, used, holding, &idle);  // class 4 idle from here
  ClassSet shrunk;
  ASSERT_TRUE(MissAndGrow(lim, &c, 2, false, &shrunk));
  ASSERT_TRUE(shrunk.Contains(4));
  ASSERT_EQ(c.capacity[4], 0u);
  ASSERT_EQ(c.capacity[2], 8u);
  // Every class in use, each stack full.
  uint32_t full[kNumClasses] = {};
  for (size_t cls = 1; cls <= 3; ++cls) {
    full[cls] = c.capacity[cls];
    CapacityNoteMiss(lim, &c, cls, true);
  }
  shrunk = ClassSet{};
  EXPECT_TRUE(MissAndGrowHolding(lim, &c, 4, full, &shrunk));
  EXPECT_EQ(c.capacity[4], lim.initial[4]);
  EXPECT_FALSE(shrunk.Count() == 0);
  for (size_t cls = 1; cls <= 3; ++cls) EXPECT_GE(c.capacity[cls], lim.initial[cls]);
  EXPECT_LE(c.capacity_bytes, lim.cap_bytes);
  EXPECT_EQ(c.capacity_bytes, SumBytes(lim, c));
  // At its initial capacity it no longer takes what the others hold.
  for (size_t cls = 1; cls <= 3; ++cls) full[cls] = c.capacity[cls];
  const size_t before = c.capacity_bytes;
  shrunk = ClassSet{};
  EXPECT_FALSE(MissAndGrowHolding(lim, &c, 4, full, &shrunk));
  EXPECT_EQ(shrunk.Count(), 0);
  EXPECT_EQ(c.capacity[4], lim.initial[4]);
  EXPECT_EQ(c.capacity_bytes, before);
}

// A class that neither missed nor moved since the last look goes back to its initial
// capacity and is handed back whole; a class in use is left alone.
TEST(CacheCapacity, IdleClassShrinksOnTheSecondLook) {
  const CapacityLimits lim = Limits(1 << 20);
  CacheCapacity c;
  CapacityInit(lim, &c);
  ClassSet shrunk;
  for (int i = 0; i < 5; ++i) MissAndGrow(lim, &c, 1, true, &shrunk);
  for (int i = 0; i < 5; ++i) MissAndGrow(lim, &c, 2, true, &shrunk);
  ASSERT_GT(c.capacity[1], 4u);
  ASSERT_GT(c.capacity[2], 4u);
  ClassSet holding;
  holding.Assign(1, true);
  holding.Assign(2, true);
  holding.Assign(3, true);
  // Look 1: both missed since the start: kept. Class 3 did not, but holds objects: idle.
  ClassSet used, idle;
  CapacityDecayTick(lim, &c, used, holding, &idle);
  EXPECT_FALSE(idle.Contains(1));
  EXPECT_FALSE(idle.Contains(2));
  // Look 2: class 2 was used in between, class 1 left alone.
  used.Assign(2, true);
  idle = ClassSet{};
  CapacityDecayTick(lim, &c, used, holding, &idle);
  EXPECT_TRUE(idle.Contains(1));
  EXPECT_FALSE(idle.Contains(2));
  EXPECT_EQ(c.capacity[1], lim.initial[1]);
  EXPECT_GT(c.capacity[2], 4u);
  // Classes with nothing to hand back and no capacity above initial are not reported.
  EXPECT_FALSE(idle.Contains(4));
  EXPECT_EQ(c.capacity_bytes, SumBytes(lim, c));
}

// A class that only overflows (a consumer of objects allocated elsewhere) never grows;
// once it also runs dry, its overflows count as misses.
TEST(CacheCapacity, OverflowsAloneDoNotGrow) {
  const CapacityLimits lim = Limits(1 << 20);
  CacheCapacity c;
  CapacityInit(lim, &c);
  for (int i = 0; i < 100; ++i) ASSERT_FALSE(CapacityNoteMiss(lim, &c, 2, false));
  EXPECT_FALSE(CapacityNoteMiss(lim, &c, 2, true));
  EXPECT_TRUE(CapacityNoteMiss(lim, &c, 2, false));
}

// A class refused at the cap asks again only after twice as many misses each time; a
// look of the decay clock lets it ask again at once.
TEST(CacheCapacity, RefusedGrowsBackOff) {
  const CapacityLimits lim = Limits(4 * 16 + 4 * 64 + 4 * 1024 + 4 * 16384);  // at the cap
  CacheCapacity c;
  CapacityInit(lim, &c);
  for (size_t cls : {1, 3, 4}) CapacityNoteMiss(lim, &c, cls, true);  // none idle
  ClassSet shrunk;
  for (uint32_t refused = 0; refused < kMaxRefusals + 2; ++refused) {
    const uint32_t wait = kMissesToGrow << std::min(refused, kMaxRefusals);
    for (uint32_t i = 1; i < wait; ++i) ASSERT_FALSE(CapacityNoteMiss(lim, &c, 2, true)) << refused;
    ASSERT_TRUE(CapacityNoteMiss(lim, &c, 2, true)) << refused;
    ASSERT_FALSE(CapacityGrow(lim, &c, 2, true, kNoLengths, &shrunk));
  }
  ClassSet used, holding, idle;
  CapacityDecayTick(lim, &c, used, holding, &idle);
  EXPECT_FALSE(CapacityNoteMiss(lim, &c, 2, true));
  EXPECT_TRUE(CapacityNoteMiss(lim, &c, 2, true));
}

// The step rule both modes grow by: back to initial at once, then one object at a time
// up to a batch (a thread's list starts at 0), then a batch at a time.
TEST(CacheCapacity, StepRule) {
  EXPECT_EQ(CapacityStep(0, 0, 32), 1u);
  EXPECT_EQ(CapacityStep(31, 0, 32), 1u);
  EXPECT_EQ(CapacityStep(32, 0, 32), 32u);
  EXPECT_EQ(CapacityStep(0, 32, 32), 32u);
  EXPECT_EQ(CapacityStep(10, 32, 32), 22u);
  EXPECT_EQ(CapacityStep(64, 32, 32), 32u);
  EXPECT_EQ(CapacityOverCap(100, 20, 110), 10u);
  EXPECT_EQ(CapacityOverCap(100, 10, 110), 0u);
}

}  // namespace
}  // namespace jsmalloc
