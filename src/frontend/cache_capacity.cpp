#include "frontend/cache_capacity.h"

namespace jsmalloc {

namespace {

uint32_t Relaxed(const uint32_t* p) {
  return __atomic_load_n(p, __ATOMIC_RELAXED);
}

void SetRelaxed(uint32_t* p, uint32_t v) {
  __atomic_store_n(p, v, __ATOMIC_RELAXED);
}

size_t Bytes(const CapacityLimits& lim, size_t cls, uint32_t objects) {
  return size_t{objects} * lim.size[cls];
}

size_t Over(const CapacityLimits& lim, const CacheCapacity& c, size_t need) {
  return CapacityOverCap(c.capacity_bytes, need, lim.cap_bytes);
}

// Idle: neither missed nor moved before the last look (since the one before it), and
// no miss since. The last look already took such a class back to its initial capacity;
// this takes the rest.
bool Idle(const CacheCapacity& c, size_t cls) {
  return !c.active_at_last_look.Contains(cls) && Relaxed(&c.missed_at_tick[cls]) != c.tick;
}

// Lowers cls to `to` (below its capacity), marking it for the caller to shrink.
void Lower(const CapacityLimits& lim, CacheCapacity* c, size_t cls, uint32_t to, ClassSet* shrunk) {
  CapacitySet(lim, c, cls, to);
  shrunk->Assign(cls, true);
}

}  // namespace

void CapacityInit(const CapacityLimits& lim, CacheCapacity* c) {
  c->capacity_bytes = 0;
  c->tick = 0;
  c->steal_cursor = 0;
  for (size_t cls = 0; cls < kNumClasses; ++cls) {
    c->capacity[cls] = lim.initial[cls] < lim.max[cls] ? lim.initial[cls] : lim.max[cls];
    c->capacity_bytes += Bytes(lim, cls, c->capacity[cls]);
    SetRelaxed(&c->misses[cls], 0);
    SetRelaxed(&c->missed_at_tick[cls], kNeverMissed);
    SetRelaxed(&c->refusals[cls], 0);
    SetRelaxed(&c->ran_dry[cls], 0);
  }
  c->active_at_last_look = ClassSet{};
}

uint32_t CapacityGrowStep(const CapacityLimits& lim, const CacheCapacity& c, size_t cls) {
  uint32_t cap = Relaxed(&c.capacity[cls]);
  if (cap >= lim.max[cls]) return 0;
  uint32_t step = CapacityStep(cap, lim.initial[cls], lim.step[cls] > 0 ? lim.step[cls] : 1);
  return step < lim.max[cls] - cap ? step : lim.max[cls] - cap;
}

bool CapacityNoteMiss(const CapacityLimits& lim, CacheCapacity* c, size_t cls, bool ran_dry) {
  SetRelaxed(&c->missed_at_tick[cls], Relaxed(&c->tick));
  if (ran_dry) {
    SetRelaxed(&c->ran_dry[cls], 1);
  } else if (Relaxed(&c->ran_dry[cls]) == 0) {
    return false;
  }
  uint32_t misses = Relaxed(&c->misses[cls]) + 1;
  SetRelaxed(&c->misses[cls], misses);
  uint32_t refusals = Relaxed(&c->refusals[cls]);
  return misses >= (kMissesToGrow << refusals) && CapacityGrowStep(lim, *c, cls) > 0;
}

void CapacitySet(const CapacityLimits& lim, CacheCapacity* c, size_t cls, uint32_t capacity) {
  if (capacity > lim.max[cls]) capacity = lim.max[cls];
  c->capacity_bytes -= Bytes(lim, cls, c->capacity[cls]);
  c->capacity_bytes += Bytes(lim, cls, capacity);
  SetRelaxed(&c->capacity[cls], capacity);
}

bool CapacityGrow(const CapacityLimits& lim, CacheCapacity* c, size_t cls, bool from_active,
                  const uint32_t* length, ClassSet* shrunk) {
  const uint32_t step = CapacityGrowStep(lim, *c, cls);
  if (step == 0) return false;
  const size_t need = Bytes(lim, cls, step);
  // Idle classes first, whole, the largest objects first: the most memory per object
  // handed back, and their spans can go back to the page heap.
  for (size_t v = kNumClasses - 1; v > 0 && Over(lim, *c, need) > 0; --v) {
    if (v == cls || c->capacity[v] == 0 || !Idle(*c, v)) continue;
    Lower(lim, c, v, 0, shrunk);
  }
  // Then a step of unused capacity from each class above its initial capacity in turn,
  // so that no class is always the one to lose. Only for a class that ran dry: one that
  // overflowed takes from idle classes alone, or capacity would circle between two full
  // classes at a hand-back per free. A class that ran dry below its initial capacity
  // (taken while it was idle) gets that back even from objects the others hold above
  // theirs: until the next decay look no class may be idle, and at capacity 0 each
  // malloc of it goes to the middle tier (seed free-desc, per-CPU: 640,000 refills for
  // 640,000 mallocs of 16 B). It cannot circle: it takes no more than its initial
  // capacity, and leaves each class at least its own.
  const bool restoring = from_active && c->capacity[cls] < lim.initial[cls];
  for (bool took = from_active; took && Over(lim, *c, need) > 0;) {
    took = false;
    for (uint32_t n = 1; n < kNumClasses && Over(lim, *c, need) > 0; ++n) {
      size_t v = (c->steal_cursor + n) % kNumClasses;
      if (v == 0 || v == cls) continue;
      const uint32_t floor = !restoring && length[v] > lim.initial[v] ? length[v] : lim.initial[v];
      if (c->capacity[v] <= floor) continue;
      uint32_t spare = c->capacity[v] - floor;
      uint32_t take = lim.step[v] < spare ? lim.step[v] : spare;
      Lower(lim, c, v, c->capacity[v] - take, shrunk);
      c->steal_cursor = static_cast<uint32_t>(v);
      took = true;
    }
  }
  // Counted again from 0 either way: a class refused at the cap asks again after as
  // many misses as one that grew, not on every miss (each ask scans every class, under
  // the caller's lock).
  SetRelaxed(&c->misses[cls], 0);
  if (Over(lim, *c, need) > 0) {
    uint32_t refusals = Relaxed(&c->refusals[cls]);
    if (refusals < kMaxRefusals) SetRelaxed(&c->refusals[cls], refusals + 1);
    return false;
  }
  SetRelaxed(&c->refusals[cls], 0);
  SetRelaxed(&c->ran_dry[cls], 0);
  CapacitySet(lim, c, cls, c->capacity[cls] + step);
  return true;
}

void CapacityDecayTick(const CapacityLimits& lim, CacheCapacity* c, const ClassSet& used,
                       const ClassSet& holding, ClassSet* idle) {
  // Missed since the last look: missed_at_tick == tick before the increment.
  const uint32_t last = c->tick;
  SetRelaxed(&c->tick, last + 1);
  for (size_t cls = 1; cls < kNumClasses; ++cls) {
    SetRelaxed(&c->refusals[cls], 0);  // idle classes may have given up room since
    const bool active = used.Contains(cls) || Relaxed(&c->missed_at_tick[cls]) == last;
    c->active_at_last_look.Assign(cls, active);
    if (active) continue;
    const bool grown = c->capacity[cls] > lim.initial[cls];
    if (!grown && !holding.Contains(cls)) continue;
    if (grown) CapacitySet(lim, c, cls, lim.initial[cls]);
    SetRelaxed(&c->misses[cls], 0);
    idle->Assign(cls, true);
  }
}

}  // namespace jsmalloc
