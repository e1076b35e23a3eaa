// The front-end's sizing policy (frontend/cache_capacity.h), on its own: plain data in,
// decisions out, with limits made up here so that every rule can be reached.
#include "frontend/cache_capacity.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace jsmalloc {
namespace {

// Classes 1..4: 16 B, 64 B, 1 KiB, 16 KiB; step 4, initial 4, max 64 (16 KiB: 16); a
// grow on every second miss, as per-CPU mode has it.
CapacityLimits Limits() {
  CapacityLimits lim;
  const uint32_t sizes[] = {16, 64, 1024, 16384};
  for (size_t cls = 1; cls <= 4; ++cls) {
    lim.size[cls] = sizes[cls - 1];
    lim.step[cls] = 4;
    lim.initial[cls] = 4;
    lim.max[cls] = cls == 4 ? 16 : 64;
  }
  lim.misses_to_grow = 2;
  return lim;
}

// A made-up cache: what each class holds, and the byte cap of all of them.
struct FakeCache {
  uint32_t length[kNumClasses] = {};
  size_t cap_bytes = 0;
  static uint32_t LengthOf(const void* cache, size_t cls) {
    return static_cast<const FakeCache*>(cache)->length[cls];
  }
  CacheContents Contents() const {
    return {.length = &LengthOf, .cache = this, .cap_bytes = cap_bytes};
  }
};

size_t SumBytes(const CapacityLimits& lim, const CacheCapacity& c) {
  size_t bytes = 0;
  for (size_t cls = 0; cls < kNumClasses; ++cls) bytes += size_t{c.capacity[cls]} * lim.size[cls];
  return bytes;
}

// Misses of cls until the policy says grow (after a refusal it waits longer), then the
// grow. For a miss on free (!from_active) the class earned growth on its frees, so that
// the miss counts.
bool MissAndGrow(const CapacityLimits& lim, CacheCapacity* c, size_t cls, bool from_active,
                 const FakeCache& cache, ClassSet* shrunk) {
  for (uint32_t i = 0; i < (lim.misses_to_grow << kMaxRefusals); ++i) {
    if (!from_active) c->earned[cls] = lim.step[cls];
    if (CapacityNoteMiss(lim, c, cls, from_active))
      return CapacityGrow(lim, c, cls, from_active, cache.Contents(), shrunk);
  }
  return false;
}

// n misses of cls that do not grow it: the cache's miss clock moves on.
void Misses(const CapacityLimits& lim, CacheCapacity* c, size_t cls, uint32_t n) {
  for (uint32_t i = 0; i < n; ++i) CapacityNoteMiss(lim, c, cls, true);
}

TEST(CacheCapacity, StartsAtInitial) {
  const CapacityLimits lim = Limits();
  CacheCapacity c;
  CapacityInit(lim, &c);
  for (size_t cls = 1; cls <= 4; ++cls) EXPECT_EQ(c.capacity[cls], 4u);
  EXPECT_EQ(c.capacity[5], 0u);
  EXPECT_EQ(c.capacity_bytes, SumBytes(lim, c));
  EXPECT_EQ(c.limited.Count(), 4);
}

TEST(CacheCapacity, OneMissDoesNotGrowRepeatedMissesDo) {
  const CapacityLimits lim = Limits();
  const FakeCache cache{.cap_bytes = 1 << 20};
  CacheCapacity c;
  CapacityInit(lim, &c);
  EXPECT_FALSE(CapacityNoteMiss(lim, &c, 2, true));
  EXPECT_TRUE(CapacityNoteMiss(lim, &c, 2, true));
  ClassSet shrunk;
  EXPECT_TRUE(CapacityGrow(lim, &c, 2, true, cache.Contents(), &shrunk));
  EXPECT_EQ(c.capacity[2], 8u);
  EXPECT_EQ(shrunk.Count(), 0);
  // The count starts again after a grow.
  EXPECT_FALSE(CapacityNoteMiss(lim, &c, 2, true));
}

// Per-thread limits: a list starts at 0 and grows on every miss, one object at a time
// up to a batch, then a batch at a time.
TEST(CacheCapacity, ListsStartEmptyAndGrowOnEachMiss) {
  CapacityLimits lim = Limits();
  for (size_t cls = 1; cls <= 4; ++cls) lim.initial[cls] = 0;
  lim.misses_to_grow = 1;
  const FakeCache cache{.cap_bytes = 1 << 20};
  CacheCapacity c;
  CapacityInit(lim, &c);
  EXPECT_EQ(c.capacity_bytes, 0u);
  EXPECT_EQ(c.limited.Count(), 0);
  ClassSet shrunk;
  const uint32_t expect[] = {1, 2, 3, 4, 8, 12};
  for (uint32_t want : expect) {
    ASSERT_TRUE(CapacityNoteMiss(lim, &c, 1, true));
    ASSERT_TRUE(CapacityGrow(lim, &c, 1, true, cache.Contents(), &shrunk));
    EXPECT_EQ(c.capacity[1], want);
  }
  EXPECT_TRUE(c.limited.Contains(1));
  EXPECT_EQ(shrunk.Count(), 0);
}

TEST(CacheCapacity, GrowsUpToItsMaxAndNoFurther) {
  const CapacityLimits lim = Limits();
  const FakeCache cache{.cap_bytes = 1 << 20};
  CacheCapacity c;
  CapacityInit(lim, &c);
  ClassSet shrunk;
  int grows = 0;
  for (int i = 0; i < 100; ++i) grows += MissAndGrow(lim, &c, 1, true, cache, &shrunk) ? 1 : 0;
  EXPECT_EQ(c.capacity[1], 64u);
  EXPECT_EQ(grows, (64 - 4) / 4);
  EXPECT_FALSE(CapacityNoteMiss(lim, &c, 1, true)) << "at its max a class does not ask to grow";
  EXPECT_EQ(c.capacity_bytes, SumBytes(lim, c));
}

// Whatever the misses, fetches and looks, the capacities never add up to more than the
// cap, and the bookkeeping stays true.
TEST(CacheCapacity, ByteCapIsNeverExceeded) {
  const CapacityLimits lim = Limits();
  FakeCache cache{.cap_bytes = 4 * 16384 + 64 * 1024};  // the initial capacities fit, not every max
  CacheCapacity c;
  CapacityInit(lim, &c);
  ASSERT_LE(c.capacity_bytes, cache.cap_bytes);
  uint32_t seed = 12345;
  int grew = 0, refused = 0;
  for (int i = 0; i < 20000; ++i) {
    seed = seed * 1103515245u + 12345u;
    const size_t cls = 1 + (seed >> 16) % 4;
    const bool ran_dry = ((seed >> 8) & 1) != 0;
    if (((seed >> 9) & 3) == 0) CapacityNoteFetch(lim, &c, cls, 4);
    cache.length[cls] = (seed >> 11) % (c.capacity[cls] + 1);
    ClassSet shrunk;
    if (CapacityNoteMiss(lim, &c, cls, ran_dry)) {
      if (CapacityGrow(lim, &c, cls, ran_dry, cache.Contents(), &shrunk)) {
        ++grew;
      } else {
        ++refused;
      }
    }
    if ((i % 500) == 499) {
      ClassSet used, holding, idle;
      CapacityDecayTick(lim, &c, used, holding, &idle);
    }
    ASSERT_LE(c.capacity_bytes, cache.cap_bytes) << "after miss " << i;
    ASSERT_EQ(c.capacity_bytes, SumBytes(lim, c));
    for (size_t k = 1; k <= 4; ++k) {
      ASSERT_LE(c.capacity[k], lim.max[k]);
      ASSERT_EQ(c.limited.Contains(k), c.capacity[k] > 0);
    }
  }
  EXPECT_GT(grew, 0);
  EXPECT_GT(refused, 0) << "the cap was never reached: the test proves nothing";
}

// A cap where class 3 (1 KiB) can grow to 64 objects beside the others' initial
// capacities and no further; c starts there, class 3 grown to the cap.
constexpr size_t kRoomForClass3 = 4 * 16 + 4 * 64 + 64 * 1024 + 4 * 16384;
void GrowClass3ToTheCap(const CapacityLimits& lim, const FakeCache& cache, CacheCapacity* c) {
  CapacityInit(lim, c);
  ClassSet shrunk;
  while (c->capacity[3] < lim.max[3]) ASSERT_TRUE(MissAndGrow(lim, c, 3, true, cache, &shrunk));
  ASSERT_EQ(shrunk.Count(), 0);
  ASSERT_EQ(c->capacity[3], 64u);  // class 3 took the room there was, exactly
  ASSERT_EQ(c->capacity_bytes, cache.cap_bytes);
}

// At the cap, a class that overflows takes room from idle classes only: those that have
// not missed in the cache's last kIdleMisses misses. A class in use keeps its capacity
// until it too has been left alone that long.
TEST(CacheCapacity, OverflowingClassTakesFromIdleClassesOnly) {
  const CapacityLimits lim = Limits();
  const FakeCache cache{.cap_bytes = kRoomForClass3};
  CacheCapacity c;
  ASSERT_NO_FATAL_FAILURE(GrowClass3ToTheCap(lim, cache, &c));
  // Too few misses yet for any class to be idle: nothing moves.
  ClassSet shrunk;
  EXPECT_FALSE(MissAndGrow(lim, &c, 4, false, cache, &shrunk));
  EXPECT_EQ(shrunk.Count(), 0);
  // Class 4 keeps missing, class 3 too now and then; classes 1 and 2 never.
  for (int i = 0; i < 4; ++i) {
    Misses(lim, &c, 4, kIdleMisses / 4);
    Misses(lim, &c, 3, 1);
  }
  // Classes 1 and 2 give up their capacity, which is not enough; class 3 keeps its.
  EXPECT_FALSE(MissAndGrow(lim, &c, 4, false, cache, &shrunk));
  EXPECT_EQ(c.capacity[3], 64u);
  EXPECT_EQ(c.capacity[4], 4u);
  EXPECT_TRUE(shrunk.Contains(1) && shrunk.Contains(2));
  EXPECT_EQ(c.capacity[1] + c.capacity[2], 0u);
  EXPECT_FALSE(shrunk.Contains(3));
  // Class 3 left alone for kIdleMisses misses: now class 4 grows, from class 3's room.
  Misses(lim, &c, 4, kIdleMisses);
  shrunk = ClassSet{};
  EXPECT_TRUE(MissAndGrow(lim, &c, 4, false, cache, &shrunk));
  EXPECT_TRUE(shrunk.Contains(3));
  EXPECT_LT(c.capacity[3], 64u);
  EXPECT_EQ(c.capacity[4], 8u);
  EXPECT_LE(c.capacity_bytes, cache.cap_bytes);
  EXPECT_EQ(c.capacity_bytes, SumBytes(lim, c));
}

// Per-thread limits (overflow_takes_idle false): past its first step, a class that
// overflows takes no idle room (walking an idle list costs a cache miss per object); it
// still does below it, and once it runs dry it takes idle room as before.
TEST(CacheCapacity, WithoutOverflowTakesIdleOnlyADryClassTakesIdleRoomPastItsFirstStep) {
  CapacityLimits lim = Limits();
  lim.overflow_takes_idle = false;
  const FakeCache cache{.cap_bytes = kRoomForClass3};
  CacheCapacity c;
  ASSERT_NO_FATAL_FAILURE(GrowClass3ToTheCap(lim, cache, &c));
  Misses(lim, &c, 4, 2 * kIdleMisses);  // classes 1, 2 and 3 turn idle
  ClassSet shrunk;
  EXPECT_FALSE(MissAndGrow(lim, &c, 4, false, cache, &shrunk));
  EXPECT_EQ(shrunk.Count(), 0);
  EXPECT_EQ(c.capacity[3], 64u);
  EXPECT_EQ(c.capacity[4], 4u);
  // Running dry, it takes the room.
  EXPECT_TRUE(MissAndGrow(lim, &c, 4, true, cache, &shrunk));
  EXPECT_TRUE(shrunk.Contains(3));
  EXPECT_EQ(c.capacity[4], 8u);
  // Below its first step (robbed), in a cache with no room left, an overflow takes
  // idle room too.
  CapacitySet(lim, &c, 4, 0);
  CapacitySet(lim, &c, 3, 64);
  const FakeCache full{.cap_bytes = c.capacity_bytes};
  Misses(lim, &c, 4, 2 * kIdleMisses);
  shrunk = ClassSet{};
  EXPECT_TRUE(MissAndGrow(lim, &c, 4, false, full, &shrunk));
  EXPECT_TRUE(shrunk.Contains(3));
  EXPECT_EQ(c.capacity[4], 4u);
  EXPECT_LE(c.capacity_bytes, full.cap_bytes);
  EXPECT_EQ(c.capacity_bytes, SumBytes(lim, c));
}

// Per-CPU limits (idle_needs_look): misses alone do not make a class idle, since the
// fast path may keep it busy without a miss; it must also have been left alone between
// the last two looks of the decay clock (before the first: since the start), and not
// missed since. (Class 4 overflows: it takes from idle classes only.)
TEST(CacheCapacity, WithIdleNeedsLookOnlyClassesLeftAloneAtALookAreIdle) {
  CapacityLimits lim = Limits();
  lim.idle_needs_look = true;
  const FakeCache cache{.cap_bytes = kRoomForClass3};
  CacheCapacity c;
  ASSERT_NO_FATAL_FAILURE(GrowClass3ToTheCap(lim, cache, &c));
  Misses(lim, &c, 4, 2 * kIdleMisses);  // classes 1..3: no miss in kIdleMisses misses
  // Classes 1 and 2 never missed: idle. Class 3 missed since the start: not yet.
  ClassSet shrunk;
  EXPECT_FALSE(MissAndGrow(lim, &c, 4, false, cache, &shrunk));
  EXPECT_TRUE(shrunk.Contains(1) && shrunk.Contains(2));
  EXPECT_FALSE(shrunk.Contains(3));
  EXPECT_EQ(c.capacity[3], 64u);
  // A look that saw class 3's stack move: still in use.
  ClassSet used, holding, idle;
  used.Assign(3, true);
  CapacityDecayTick(lim, &c, used, holding, &idle);
  Misses(lim, &c, 4, kIdleMisses);
  shrunk = ClassSet{};
  EXPECT_FALSE(MissAndGrow(lim, &c, 4, false, cache, &shrunk));
  EXPECT_FALSE(shrunk.Contains(3));
  EXPECT_EQ(c.capacity[3], 64u);
  // The next look finds class 3 alone: it gives its room up there (decay) and after.
  used = ClassSet{};
  CapacityDecayTick(lim, &c, used, holding, &idle);
  EXPECT_EQ(c.capacity[3], lim.initial[3]);
  shrunk = ClassSet{};
  EXPECT_TRUE(MissAndGrow(lim, &c, 4, false, cache, &shrunk));
  EXPECT_TRUE(shrunk.Contains(3));
  EXPECT_EQ(c.capacity_bytes, SumBytes(lim, c));
}

// At the cap, an overflowing class takes nothing from classes in use; one that ran dry
// takes the capacity they do not use, never below their initial capacity nor below
// what they hold.
TEST(CacheCapacity, ActiveClassesLoseOnlyToAClassThatRanDry) {
  const CapacityLimits lim = Limits();
  FakeCache cache{.cap_bytes = kRoomForClass3};
  CacheCapacity c;
  ASSERT_NO_FATAL_FAILURE(GrowClass3ToTheCap(lim, cache, &c));
  ClassSet shrunk;
  for (size_t cls = 1; cls <= 4; ++cls) Misses(lim, &c, cls, 1);  // all in use
  EXPECT_FALSE(MissAndGrow(lim, &c, 2, false, cache, &shrunk));
  EXPECT_EQ(shrunk.Count(), 0);
  EXPECT_EQ(c.capacity[3], 64u);
  EXPECT_TRUE(MissAndGrow(lim, &c, 2, true, cache, &shrunk));
  EXPECT_TRUE(shrunk.Contains(3));
  EXPECT_EQ(c.capacity[2], 8u);
  EXPECT_EQ(c.capacity[3], 63u);  // one 1 KiB object of room made room for 4 of 64 B
  // Class 3 holds 62 objects: it gives up only the one above them, room for 28 more of
  // class 2.
  cache.length[3] = 62;
  for (int i = 0; i < 1000; ++i) {
    for (size_t cls : {1, 3, 4}) Misses(lim, &c, cls, 1);  // all still in use
    if (CapacityNoteMiss(lim, &c, 2, true))
      CapacityGrow(lim, &c, 2, true, cache.Contents(), &shrunk);
  }
  EXPECT_EQ(c.capacity[3], 62u);
  EXPECT_EQ(c.capacity[2], 36u);
  EXPECT_LE(c.capacity_bytes, cache.cap_bytes);
  EXPECT_EQ(c.capacity_bytes, SumBytes(lim, c));
}

// Unused capacity is taken round-robin: each grow starts after the class it last took
// from, so that no class is always the one to lose.
TEST(CacheCapacity, UnusedCapacityIsTakenRoundRobin) {
  CapacityLimits lim = Limits();
  for (size_t cls = 1; cls <= 4; ++cls) lim.size[cls] = 64;
  lim.max[4] = 64;
  // Room for every class at 8 objects: each but class 4 at 8, class 4 at its initial 4.
  const FakeCache cache{.cap_bytes = 4 * 8 * 64};
  CacheCapacity c;
  CapacityInit(lim, &c);
  ClassSet shrunk;
  for (size_t cls = 1; cls <= 3; ++cls)
    ASSERT_TRUE(MissAndGrow(lim, &c, cls, true, cache, &shrunk));
  ASSERT_TRUE(MissAndGrow(lim, &c, 4, true, cache, &shrunk));
  ASSERT_EQ(shrunk.Count(), 0);
  ASSERT_EQ(c.capacity_bytes, cache.cap_bytes);
  // Class 4 keeps running dry: each of its grows needs 4 objects' room, which one class
  // gives; the classes give in turn.
  size_t losers[3];
  for (size_t& loser : losers) {
    for (size_t cls = 1; cls <= 3; ++cls) Misses(lim, &c, cls, 1);
    shrunk = ClassSet{};
    ASSERT_TRUE(MissAndGrow(lim, &c, 4, true, cache, &shrunk));
    ASSERT_EQ(shrunk.Count(), 1);
    loser = shrunk.NextFrom(1);
  }
  EXPECT_NE(losers[0], losers[1]);
  EXPECT_NE(losers[1], losers[2]);
  EXPECT_NE(losers[0], losers[2]);
  for (size_t cls = 1; cls <= 3; ++cls) EXPECT_EQ(c.capacity[cls], lim.initial[cls]);
}

// Unused capacity a class gave up comes back a batch at a time, where a new class grows
// one object at a time below a batch; a class left alone between two looks of the decay
// clock starts again from one at a time. Limits as per-thread mode's: lists start at 0
// and grow on each miss.
TEST(CacheCapacity, RobbedClassRegainsABatchAtATime) {
  CapacityLimits lim = Limits();
  for (size_t cls = 1; cls <= 4; ++cls) {
    lim.size[cls] = 64;
    lim.step[cls] = 8;
    lim.initial[cls] = 0;
    lim.max[cls] = 64;
  }
  lim.misses_to_grow = 1;
  FakeCache cache{.cap_bytes = 16 * 64};
  CacheCapacity c;
  CapacityInit(lim, &c);
  ClassSet shrunk;
  for (size_t cls : {1, 2}) {
    for (uint32_t want = 1; want <= 8; ++want) {
      ASSERT_TRUE(MissAndGrow(lim, &c, cls, true, cache, &shrunk));
      ASSERT_EQ(c.capacity[cls], want) << "class " << cls;  // one at a time below a batch
    }
  }
  ASSERT_EQ(c.capacity_bytes, cache.cap_bytes);
  // Class 2 runs dry again: class 1 holds nothing, and gives its 8 unused.
  ASSERT_TRUE(MissAndGrow(lim, &c, 2, true, cache, &shrunk));
  EXPECT_TRUE(shrunk.Contains(1));
  EXPECT_EQ(c.capacity[1], 0u);
  EXPECT_EQ(c.capacity[2], 16u);
  cache.length[2] = 16;  // class 2 holds all of its objects: nothing more to take there
  // With room again (the cap went up), class 1's next grow gives it back all 8.
  cache.cap_bytes = 24 * 64;
  ASSERT_TRUE(MissAndGrow(lim, &c, 1, true, cache, &shrunk));
  EXPECT_EQ(c.capacity[1], 8u);
  // Taken again, then left alone for two looks (the first sees its miss): one at a time.
  cache.length[2] = 0;
  ASSERT_TRUE(MissAndGrow(lim, &c, 2, true, cache, &shrunk));
  ASSERT_EQ(c.capacity[1], 0u);
  ClassSet used, holding, idle;
  used.Assign(2, true);
  CapacityDecayTick(lim, &c, used, holding, &idle);
  CapacityDecayTick(lim, &c, used, holding, &idle);
  ASSERT_TRUE(MissAndGrow(lim, &c, 1, true, cache, &shrunk));
  EXPECT_EQ(c.capacity[1], 1u);
  EXPECT_LE(c.capacity_bytes, cache.cap_bytes);
  EXPECT_EQ(c.capacity_bytes, SumBytes(lim, c));
}

// Idle classes give up capacity largest objects first, in groups of kIdleGroup, each a
// share, and a pass that takes from idle classes takes at least kIdleEvictBytes: the
// lists are walked side by side, and the classes growing after a change of sizes find
// room for several steps.
TEST(CacheCapacity, IdleClassesGiveUpCapacityInGroupsLargestFirst) {
  CapacityLimits lim;
  constexpr size_t kIdle = 10, kGrowing = kIdle + 1;
  FakeCache cache;
  for (size_t cls = 1; cls <= kGrowing; ++cls) {
    lim.size[cls] = cls <= kIdle ? static_cast<uint32_t>(cls * 1024) : 1024;
    lim.step[cls] = 4;
    lim.initial[cls] = cls <= kIdle ? 16 : 4;
    lim.max[cls] = 64;
    cache.length[cls] = lim.initial[cls];  // full
    cache.cap_bytes += size_t{lim.initial[cls]} * lim.size[cls];
  }
  lim.misses_to_grow = 1;
  CacheCapacity c;
  CapacityInit(lim, &c);
  Misses(lim, &c, kGrowing, kIdleMisses);  // every other class idle now
  ClassSet shrunk;
  ASSERT_TRUE(CapacityNoteMiss(lim, &c, kGrowing, true));
  ASSERT_TRUE(CapacityGrow(lim, &c, kGrowing, true, cache.Contents(), &shrunk));
  size_t handed_back = 0;
  for (size_t cls = 1; cls <= kIdle; ++cls) {
    handed_back += size_t{lim.initial[cls] - c.capacity[cls]} * lim.size[cls];
    EXPECT_EQ(shrunk.Contains(cls), cls > kIdle - kIdleGroup) << cls;
    if (cls > kIdle - kIdleGroup) {
      EXPECT_LT(c.capacity[cls], lim.initial[cls]) << cls;
    }
  }
  EXPECT_GE(handed_back, kIdleEvictBytes);
  EXPECT_LT(handed_back, 2 * kIdleEvictBytes);
  EXPECT_EQ(c.capacity[kGrowing], 8u);
  EXPECT_LE(c.capacity_bytes, cache.cap_bytes);
  EXPECT_EQ(c.capacity_bytes, SumBytes(lim, c));
}

// Misses of cls until the policy says grow, then the grow, for a class that ran dry.
bool RunDryAndGrow(const CapacityLimits& lim, CacheCapacity* c, size_t cls, const FakeCache& cache,
                   ClassSet* shrunk) {
  return MissAndGrow(lim, c, cls, true, cache, shrunk);
}

// A class whose capacity went to another while it was idle, and that then runs dry
// while every other class is in use and full, gets its initial capacity back from the
// objects they hold above theirs (at 0, each of its mallocs would go to the middle
// tier until the next look); above its initial capacity it takes only unused room.
TEST(CacheCapacity, ClassRobbedWhileIdleGetsItsInitialCapacityBack) {
  const CapacityLimits lim = Limits();
  FakeCache cache{.cap_bytes = kRoomForClass3};
  CacheCapacity c;
  ASSERT_NO_FATAL_FAILURE(GrowClass3ToTheCap(lim, cache, &c));
  Misses(lim, &c, 3, kIdleMisses);  // classes 1, 2 and 4 idle from here
  ClassSet shrunk;
  ASSERT_TRUE(MissAndGrow(lim, &c, 2, false, cache, &shrunk));
  ASSERT_TRUE(shrunk.Contains(4));
  ASSERT_EQ(c.capacity[4], 0u);
  ASSERT_EQ(c.capacity[2], 8u);
  // Every class in use, each full.
  for (size_t cls = 1; cls <= 3; ++cls) {
    cache.length[cls] = c.capacity[cls];
    Misses(lim, &c, cls, 1);
  }
  shrunk = ClassSet{};
  EXPECT_TRUE(RunDryAndGrow(lim, &c, 4, cache, &shrunk));
  EXPECT_EQ(c.capacity[4], lim.initial[4]);
  EXPECT_NE(shrunk.Count(), 0);
  for (size_t cls = 1; cls <= 3; ++cls)
    EXPECT_GE(c.capacity[cls], std::min(lim.initial[cls], cache.length[cls]));
  EXPECT_LE(c.capacity_bytes, cache.cap_bytes);
  EXPECT_EQ(c.capacity_bytes, SumBytes(lim, c));
  // At its initial capacity it no longer takes what the others hold.
  for (size_t cls = 1; cls <= 3; ++cls) {
    cache.length[cls] = c.capacity[cls];
    Misses(lim, &c, cls, 1);
  }
  const size_t before = c.capacity_bytes;
  shrunk = ClassSet{};
  EXPECT_FALSE(RunDryAndGrow(lim, &c, 4, cache, &shrunk));
  EXPECT_EQ(shrunk.Count(), 0);
  EXPECT_EQ(c.capacity[4], lim.initial[4]);
  EXPECT_EQ(c.capacity_bytes, before);
}

// A class that neither missed nor moved since the last look goes back to its initial
// capacity and is handed back whole; a class in use is left alone.
TEST(CacheCapacity, IdleClassShrinksAtTheLookAfterItsLastUse) {
  const CapacityLimits lim = Limits();
  const FakeCache cache{.cap_bytes = 1 << 20};
  CacheCapacity c;
  CapacityInit(lim, &c);
  ClassSet shrunk;
  for (int i = 0; i < 5; ++i) MissAndGrow(lim, &c, 1, true, cache, &shrunk);
  for (int i = 0; i < 5; ++i) MissAndGrow(lim, &c, 2, true, cache, &shrunk);
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
  EXPECT_TRUE(idle.Contains(3));
  // Look 2: class 2 was used in between, class 1 left alone.
  used.Assign(2, true);
  idle = ClassSet{};
  CapacityDecayTick(lim, &c, used, holding, &idle);
  EXPECT_TRUE(idle.Contains(1));
  EXPECT_FALSE(idle.Contains(2));
  EXPECT_EQ(c.capacity[1], lim.initial[1]);
  EXPECT_GT(c.capacity[2], 4u);
  // Look 3: class 2 not used, but it missed since look 2: kept.
  used = ClassSet{};
  Misses(lim, &c, 2, 1);
  idle = ClassSet{};
  CapacityDecayTick(lim, &c, used, holding, &idle);
  EXPECT_FALSE(idle.Contains(2));
  // Classes with nothing to hand back and no capacity above initial are not reported.
  EXPECT_FALSE(idle.Contains(4));
  EXPECT_EQ(c.capacity_bytes, SumBytes(lim, c));
}

// A miss on free (the class full) counts only while the class holds less than a step,
// or once it earned it: per-CPU by running dry since it last grew, per-thread by what it
// fetched: a cache that only frees a class (a consumer
// of objects allocated elsewhere) passes them on instead of growing to hold what it
// cannot reuse.
TEST(CacheCapacity, OverflowsGrowOnlyBelowAStepOrWhenEarned) {
  CapacityLimits lim = Limits();
  lim.misses_to_grow = 1;
  const FakeCache cache{.cap_bytes = 1 << 20};
  CacheCapacity c;
  CapacityInit(lim, &c);
  for (int i = 0; i < 100; ++i) ASSERT_FALSE(CapacityNoteMiss(lim, &c, 2, false));
  EXPECT_EQ(c.capacity[2], 4u);
  // It ran dry (and grew on that): no overflow counts until it runs dry again.
  ClassSet shrunk;
  ASSERT_TRUE(CapacityNoteMiss(lim, &c, 2, true));
  ASSERT_TRUE(CapacityGrow(lim, &c, 2, true, cache.Contents(), &shrunk));
  EXPECT_EQ(c.capacity[2], 8u);
  EXPECT_FALSE(CapacityNoteMiss(lim, &c, 2, false));
  // Ran dry, refused there (the count is spent): its next overflow grows it.
  lim.misses_to_grow = 2;
  EXPECT_FALSE(CapacityNoteMiss(lim, &c, 2, true));
  EXPECT_TRUE(CapacityNoteMiss(lim, &c, 2, false));
  ASSERT_TRUE(CapacityGrow(lim, &c, 2, false, cache.Contents(), &shrunk));
  EXPECT_EQ(c.capacity[2], 12u);
  for (int i = 0; i < 10; ++i) EXPECT_FALSE(CapacityNoteMiss(lim, &c, 2, false));
  // Per-thread limits: what the class fetched earns it, a step per grow on frees.
  lim.misses_to_grow = 1;
  lim.frees_earn_by_fetching = true;
  CapacityInit(lim, &c);
  ASSERT_TRUE(CapacityNoteMiss(lim, &c, 2, true));
  ASSERT_TRUE(CapacityGrow(lim, &c, 2, true, cache.Contents(), &shrunk));
  EXPECT_FALSE(CapacityNoteMiss(lim, &c, 2, false)) << "ran dry, but fetched nothing";
  CapacityNoteFetch(lim, &c, 2, 8);
  for (uint32_t want : {12u, 16u}) {
    ASSERT_TRUE(CapacityNoteMiss(lim, &c, 2, false));
    ASSERT_TRUE(CapacityGrow(lim, &c, 2, false, cache.Contents(), &shrunk));
    EXPECT_EQ(c.capacity[2], want);
  }
  EXPECT_FALSE(CapacityNoteMiss(lim, &c, 2, false)) << "two steps fetched, two grown";
  // Below a step (a list that starts at 0), overflows count.
  lim.initial[1] = 0;
  CapacityInit(lim, &c);
  for (uint32_t want = 1; want <= 4; ++want) {
    ASSERT_TRUE(CapacityNoteMiss(lim, &c, 1, false));
    ASSERT_TRUE(CapacityGrow(lim, &c, 1, false, cache.Contents(), &shrunk));
    EXPECT_EQ(c.capacity[1], want);
  }
  EXPECT_FALSE(CapacityNoteMiss(lim, &c, 1, false));
}

// A class refused at the cap asks again only after twice as many misses each time; a
// look of the decay clock lets it ask again at once.
TEST(CacheCapacity, RefusedGrowsBackOff) {
  const CapacityLimits lim = Limits();
  const FakeCache cache{.cap_bytes = 4 * 16 + 4 * 64 + 4 * 1024 + 4 * 16384};  // at the cap
  CacheCapacity c;
  CapacityInit(lim, &c);
  ClassSet shrunk;
  for (uint32_t refused = 0; refused < kMaxRefusals + 2; ++refused) {
    const uint32_t wait = lim.misses_to_grow << std::min(refused, kMaxRefusals);
    for (uint32_t i = 1; i < wait; ++i) {
      for (size_t cls : {1, 3, 4}) Misses(lim, &c, cls, 1);  // none idle
      ASSERT_FALSE(CapacityNoteMiss(lim, &c, 2, true)) << refused;
    }
    ASSERT_TRUE(CapacityNoteMiss(lim, &c, 2, true)) << refused;
    ASSERT_FALSE(CapacityGrow(lim, &c, 2, true, cache.Contents(), &shrunk));
  }
  EXPECT_EQ(shrunk.Count(), 0);
  ClassSet used, holding, idle;
  CapacityDecayTick(lim, &c, used, holding, &idle);
  EXPECT_FALSE(CapacityNoteMiss(lim, &c, 2, true));
  EXPECT_TRUE(CapacityNoteMiss(lim, &c, 2, true));
}

// Over the cap (it came down), CapacityFit takes from every other class as a class that
// ran dry would, then from idle ones, and leaves the class it is given alone.
TEST(CacheCapacity, FitBringsACacheBackUnderALowerCap) {
  const CapacityLimits lim = Limits();
  FakeCache cache{.cap_bytes = 1 << 20};
  CacheCapacity c;
  CapacityInit(lim, &c);
  ClassSet shrunk;
  for (size_t cls = 1; cls <= 4; ++cls) {
    while (MissAndGrow(lim, &c, cls, true, cache, &shrunk)) {
    }
  }
  ASSERT_EQ(shrunk.Count(), 0);
  const uint32_t kept = c.capacity[3];
  cache.cap_bytes = c.capacity_bytes / 2;
  CapacityFit(lim, &c, 3, cache.Contents(), &shrunk);
  EXPECT_LE(c.capacity_bytes, cache.cap_bytes);
  EXPECT_EQ(c.capacity[3], kept);
  EXPECT_TRUE(shrunk.Contains(4));
  EXPECT_EQ(c.capacity_bytes, SumBytes(lim, c));
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
