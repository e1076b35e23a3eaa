// Run-time sizing of a front-end cache: how many objects each size class of one cache
// (a CPU's stacks in per-CPU mode, a thread's lists in per-thread mode) may hold. One
// policy for both modes; the cache owns its objects and applies what the policy decides
// (a per-CPU stack moves its `end`, a thread's list its budget), and hands back the
// objects above a capacity the policy lowered.
//
//  - grow: a class that keeps missing (empty on malloc, full on free) grows by a step,
//    up to its max;
//  - steal: a class that would grow past the cache's byte cap takes capacity from
//    others first: idle ones (no miss since the last decay look) whole, largest objects
//    first; then, for a class that ran dry, the capacity the others do not use (above
//    the objects they hold), a step at a time from each in turn, never below their
//    initial capacity: taking objects from a class in use would make it miss at once;
//    but a class that ran dry below its initial capacity (lost while it was idle) gets
//    that back from what the others hold above theirs;
//  - decay: on each look of the decay clock, a class that neither missed nor was used
//    since the look before is idle: it goes back to its initial capacity, and the cache
//    hands all its objects back.
//
// Plain data and functions: no syscalls, no allocation, no locks of its own. The caller
// serialises the calls that change capacities (per-CPU: the slab lock; per-thread: the
// owning thread). CapacityNoteMiss alone may run beside them (per-CPU mode's misses take
// no lock): the fields it writes use relaxed loads and stores, and a lost count only
// delays a grow.
#pragma once

#include <cstddef>
#include <cstdint>

#include "bit_set.h"
#include "size_class.h"

namespace jsmalloc {

using ClassSet = BitSet<kNumClasses>;

// What each cache of one mode may hold, fixed at start-up. Class 0 is no class: all 0.
struct CapacityLimits {
  size_t cap_bytes = 0;                // all classes of one cache together
  uint32_t size[kNumClasses] = {};     // object size of the class
  uint32_t step[kNumClasses] = {};     // objects a grow adds (a batch)
  uint32_t initial[kNumClasses] = {};  // capacity at start, and after an idle period
  uint32_t max[kNumClasses] = {};      // capacity at most
};

// A class grows after this many misses since it last grew: one miss is a cold start or
// a single burst, two in a row are a working set larger than the class holds.
inline constexpr uint32_t kMissesToGrow = 2;
// A class refused at the cap asks again after twice as many misses as before, up to
// 2^kMaxRefusals times kMissesToGrow, until it grows or the decay clock looks: each ask
// scans every class under the caller's lock, and a cache whose every class is in use
// would otherwise ask on every second miss (mix-t2: 77,000 asks in 0.4 s, per-CPU).
inline constexpr uint32_t kMaxRefusals = 6;

// One cache's capacities. Invariant: capacity_bytes == sum of capacity[c] * size[c],
// capacity[c] <= max[c], and capacity_bytes <= cap_bytes unless the initial capacities
// alone exceed it (CapacityLimits are laid out so that they do not).
struct CacheCapacity {
  uint32_t capacity[kNumClasses];
  uint32_t misses[kNumClasses];          // since the class last grew (relaxed: see above)
  uint32_t missed_at_tick[kNumClasses];  // `tick` at the class's last miss (relaxed)
  uint32_t refusals[kNumClasses];        // grows refused in a row (relaxed)
  uint32_t ran_dry[kNumClasses];         // 1 once it ran dry since it last grew (relaxed)
  size_t capacity_bytes;
  uint32_t tick;                 // decay looks so far
  uint32_t steal_cursor;         // the class active capacity was last taken from
  ClassSet active_at_last_look;  // classes that missed or moved before the last look
};
// missed_at_tick of a class that never missed.
inline constexpr uint32_t kNeverMissed = ~uint32_t{0};

// Every class at its initial capacity, no misses.
void CapacityInit(const CapacityLimits& lim, CacheCapacity* c);

// Class cls missed: its cache was empty on a malloc (`ran_dry`), or full on a free. True
// when it has missed often enough to grow and is below its max: the caller then calls
// CapacityGrow (under its lock). Overflows count only once the class also ran dry since
// it last grew: a cache that only frees a class (a consumer of objects allocated
// elsewhere) would otherwise grow to hold what it cannot reuse (xmalloc-t2, per-CPU:
// peak RSS 5 -> 10 MiB), where one that allocates and frees it keeps reusing them.
bool CapacityNoteMiss(const CapacityLimits& lim, CacheCapacity* c, size_t cls, bool ran_dry);

// Grows class cls by a step (less at its max). At the byte cap, takes the room from
// other classes first (see the top of this file); `from_active` (the class ran dry, so
// its objects are being handed out) also lets it take the capacity classes in use do
// not use: above `length[c]`, the objects class c holds now (as the caller last saw).
// Adds every class whose capacity it lowered to *shrunk: the caller hands back that
// class's objects above its new capacity (from an idle class; from one in use, only
// what it gained since `length` was read). False (nothing changed but *shrunk) when no
// room was found.
bool CapacityGrow(const CapacityLimits& lim, CacheCapacity* c, size_t cls, bool from_active,
                  const uint32_t* length, ClassSet* shrunk);

// A look of the decay clock. `used`: classes whose objects the cache saw move since the
// last look (the caller's own test: a per-CPU stack's `current`); `holding`: classes
// that hold objects now. An idle class (not used, no miss since the last look) that
// holds objects or has grown goes back to its initial capacity and is added to *idle:
// the caller hands back all its objects.
void CapacityDecayTick(const CapacityLimits& lim, CacheCapacity* c, const ClassSet& used,
                       const ClassSet& holding, ClassSet* idle);

// Sets class cls's capacity (at most its max), keeping capacity_bytes. The caller hands
// back objects above it.
void CapacitySet(const CapacityLimits& lim, CacheCapacity* c, size_t cls, uint32_t capacity);

// The step a grow of cls adds now (CapacityStep), less at the class's max (0 there).
uint32_t CapacityGrowStep(const CapacityLimits& lim, const CacheCapacity& c, size_t cls);

// The rules both modes size by, for a cache that keeps its capacities its own way (the
// thread cache's budgets, whose limit moves with the number of threads and the heap).
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
