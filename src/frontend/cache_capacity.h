// Run-time sizing of a front-end cache: how many objects each size class of one cache
// (a CPU's stacks in per-CPU mode, a thread's lists in per-thread mode) may hold. One
// policy for both modes, on one state (CacheCapacity); the cache owns its objects and
// applies what the policy decides (a per-CPU stack moves its `end`, a thread's list its
// budget), and hands back the objects above a capacity the policy lowered. The modes
// differ only in their limits (CapacityLimits): a thread's lists start at 0 and grow on
// each miss, a CPU's stacks start at a few batches, grow on every second miss, and
// count as idle only once a look of the decay clock found them left alone.
//
//  - grow: a class that keeps missing (empty on malloc, full on free) grows by a step,
//    up to its max. A miss on free counts only while the class is below a step or has
//    earned it by allocating (frees_earn_by_fetching says how): a cache that only frees
//    a class (a consumer of objects allocated elsewhere) passes them on a batch at a
//    time instead of growing to hold what it cannot reuse, where one that allocates and
//    frees it keeps reusing them (xmalloc-t2, per-CPU: peak RSS 5 -> 10 MiB without
//    the rule);
//  - room: a class that would grow past the cache's byte cap takes capacity from the
//    others. One that ran dry first takes the capacity others do not use (above the
//    objects they hold and their initial capacity), round-robin so that no class is
//    always the one to lose: no object moves. Then idle classes (no miss in the cache's
//    last kIdleMisses misses; see also idle_needs_look) give theirs up, largest objects first (the
//    most memory per object moved), so that their spans go back to the page heap and are reused
//    instead of the program faulting in fresh pages. A class that overflowed takes room from idle
//    classes only: room taken from a class in use makes it overflow at its next free, and with the
//    cache full, capacity would circle between classes at one slow call per free. Past its
//    first step, only where the limits say so (overflow_takes_idle). A class that ran
//    dry below its initial capacity (robbed while it was idle) gets that back even from objects the
//    others hold above theirs;
//  - regain: unused capacity a class gave to another comes back a batch at a time, not
//    one object at a time as a new class grows: the class is in use and will miss
//    again. Below a batch, each object won back was one slow call: bench-remote at 2
//    threads made 231,000 grows, 141,000 with this rule. A class left alone between two
//    looks of the decay clock forgets what it lost;
//  - decay: on each look of the decay clock, a class that neither missed nor was used
//    since the look before is idle: it goes back to its initial capacity, and the cache
//    hands all its objects back.
//
// Plain data and functions: no syscalls, no allocation, no locks of its own. The caller
// serialises the calls that change capacities (per-CPU: the slab lock; per-thread: the
// owning thread). CapacityNoteMiss and CapacityNoteFetch alone may run beside them
// (per-CPU mode's misses take no lock): the fields they write use relaxed loads and
// stores, and a lost count only delays a grow.
#pragma once

#include <cstddef>
#include <cstdint>

#include "bit_set.h"
#include "size_class.h"

namespace jsmalloc {

using ClassSet = BitSet<kNumClasses>;

// What each cache of one mode may hold, fixed at start-up. Class 0 is no class: all 0.
struct CapacityLimits {
  uint32_t size[kNumClasses] = {};     // object size of the class
  uint32_t step[kNumClasses] = {};     // objects a grow adds (a batch)
  uint32_t initial[kNumClasses] = {};  // capacity at start, and after an idle period
  uint32_t max[kNumClasses] = {};      // capacity at most
  // Misses since the last grow that make the next: per-CPU 2 (one miss is a cold start
  // or a single burst, two in a row are a working set larger than the class holds);
  // per-thread 1 (a list starts at 0 and a refill fetches what it may hold).
  uint32_t misses_to_grow = 2;
  // Idle (may give capacity to a class that needs room) takes, besides no miss in the
  // cache's last kIdleMisses misses, having been left alone at a look of the decay
  // clock: per-CPU true, since the fast path keeps a stack busy for thousands of calls
  // without a miss, from many threads, and each hand-back is a fence (mix-t2: 2.5 times
  // the time on misses alone). Per-thread false: a list hands back in a few stores, and
  // a program that moves from one size to the next reuses the memory within its phase,
  // not a decay time later.
  bool idle_needs_look = false;
  // What lets a class grow on its frees past a step (see the top of this file): per-
  // thread true, objects it fetched from the middle tier, a step per grow (a thread
  // that frees a batch it allocated keeps it: the list grows to hold what the thread
  // reuses); per-CPU false, having run dry since it last grew (one cache for every
  // thread on the CPU, at its cap from the start: the fetch rule made it grow and rob
  // three times as often, mix-t2: 18,400 grows in 0.3 s against 6,700, 5 % more time).
  bool frees_earn_by_fetching = false;
  // Whether a class that overflowed (full on a free) may take idle classes' capacity
  // past its first step. Per-CPU true: a stack's hand-back moves an array of pointers.
  // Per-thread false: an idle list is a chain of objects last touched long ago, so the
  // room costs a cache miss per object walked, and it is taken for objects the thread
  // is letting go of, not asking for. Past its first step, the full list hands back its
  // newest objects instead, a batch of objects just touched (frag: 0.92x the time,
  // soak 0.93x, where 7 % of frag's time went to walking idle lists for free-time room).
  bool overflow_takes_idle = true;
};

// A class refused at the cap asks again after twice as many misses as before, up to
// 2^kMaxRefusals times misses_to_grow, until it grows or the decay clock looks: each
// ask scans the classes under the caller's lock, and a cache whose every class is in use
// would otherwise ask on every second miss (mix-t2: 77,000 asks in 0.4 s, per-CPU).
inline constexpr uint32_t kMaxRefusals = 6;
// A class that has not missed in this many misses of its cache is idle: its capacity
// may go to a class that needs room.
inline constexpr uint32_t kIdleMisses = 128;
// Idle classes give capacity up in groups of this many, and a pass that takes from idle
// classes at all takes at least kIdleEvictBytes: each class then hands back a share, so
// that a thread's lists (chains of objects last touched long ago, one cache miss per
// object walked) are walked side by side with their misses overlapping (frag: 20 % of
// its time, one list at a time), and the classes growing after a change of sizes find
// room for several steps before the next pass.
inline constexpr int kIdleGroup = 8;
inline constexpr size_t kIdleEvictBytes = size_t{64} << 10;

// One cache's capacities. Invariant: capacity_bytes == sum of capacity[c] * size[c],
// capacity[c] <= max[c], `limited` holds the classes with capacity > 0, and
// capacity_bytes stays under the cap a caller passes unless the initial capacities
// alone exceed it (the limits are laid out so that they do not).
struct CacheCapacity {
  uint32_t capacity[kNumClasses];
  uint32_t misses[kNumClasses];     // since the class last grew (relaxed: see above)
  uint32_t missed_at[kNumClasses];  // miss_clock at the class's last miss (relaxed)
  uint32_t refusals[kNumClasses];   // grows refused in a row (relaxed)
  uint32_t earned[kNumClasses];     // growth its frees may take (relaxed; see the top)
  uint32_t regain[kNumClasses];     // capacity others took from it unused (see the top)
  size_t capacity_bytes;
  uint32_t miss_clock;       // misses of the cache so far (relaxed)
  uint32_t clock_at_look;    // miss_clock at the last look of the decay clock
  uint32_t idle_scan_after;  // miss_clock before which no class can turn idle
  uint32_t steal_cursor;     // the class unused capacity was last taken from
  ClassSet limited;          // classes with capacity > 0
  ClassSet active_at_look;   // classes used or missed between the last two looks
};

// What the policy reads of the cache it sizes: the objects class cls holds now (as far
// as the caller can tell), and the byte cap of all classes together now.
struct CacheContents {
  uint32_t (*length)(const void* cache, size_t cls);
  const void* cache;
  size_t cap_bytes;
  uint32_t Length(size_t cls) const { return length(cache, cls); }
};

// Every class at its initial capacity, no misses.
void CapacityInit(const CapacityLimits& lim, CacheCapacity* c);

// Class cls missed: its cache was empty on a malloc (`ran_dry`), or full on a free. True
// when it has missed often enough to grow and is below its max: the caller then calls
// CapacityGrow (under its lock).
bool CapacityNoteMiss(const CapacityLimits& lim, CacheCapacity* c, size_t cls, bool ran_dry);

// Class cls fetched `objects` from the middle tier (what its frees may grow by, where
// the limits say so).
void CapacityNoteFetch(const CapacityLimits& lim, CacheCapacity* c, size_t cls, uint32_t objects);

// Grows class cls by a step (less at its max), making room at the byte cap as the top
// of this file says; `from_active`: the class ran dry (its objects are being handed
// out). Adds every class whose capacity it lowered to *shrunk: the caller hands back
// that class's objects above its new capacity. False (nothing changed but *shrunk) when
// no room was found.
bool CapacityGrow(const CapacityLimits& lim, CacheCapacity* c, size_t cls, bool from_active,
                  const CacheContents& now, ClassSet* shrunk);

// Brings a cache over its cap (the cap came down: more threads, or a smaller heap;
// or a class took more than it may hold) back under it where it can, taking from every
// class as a class that ran dry would; cls (if not 0) keeps its capacity.
void CapacityFit(const CapacityLimits& lim, CacheCapacity* c, size_t cls, const CacheContents& now,
                 ClassSet* shrunk);

// A look of the decay clock. `used`: classes whose objects the cache saw move since the
// last look (the caller's own test: a per-CPU stack's `current`, a list's head and
// length); `holding`: classes that hold objects now. An idle class (not used, no miss
// since the last look) that holds objects or has grown goes back to its initial
// capacity and is added to *idle: the caller hands back all its objects.
void CapacityDecayTick(const CapacityLimits& lim, CacheCapacity* c, const ClassSet& used,
                       const ClassSet& holding, ClassSet* idle);

// Sets class cls's capacity (at most its max), keeping capacity_bytes. The caller hands
// back objects above it.
void CapacitySet(const CapacityLimits& lim, CacheCapacity* c, size_t cls, uint32_t capacity);

// The step a grow of cls adds now (CapacityStep, or what it lost unused up to a batch:
// regain), less at the class's max (0 there).
uint32_t CapacityGrowStep(const CapacityLimits& lim, const CacheCapacity& c, size_t cls);

// Objects a grow from `capacity` adds: back to `initial` at once (a class that lost its
// capacity while idle), then one at a time up to a batch (a class used for a few objects
// holds a few), then a batch at a time.
inline uint32_t CapacityStep(uint32_t capacity, uint32_t initial, uint32_t batch) {
  if (capacity < initial) return initial - capacity;
  return capacity < batch ? 1 : batch;
}
// Bytes by which a cache holding `capacity_bytes` would pass its cap with `need` more.
inline size_t CapacityOverCap(size_t capacity_bytes, size_t need, size_t cap_bytes) {
  return capacity_bytes + need > cap_bytes ? capacity_bytes + need - cap_bytes : 0;
}

}  // namespace jsmalloc
