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

size_t Over(const CacheCapacity& c, size_t need, const CacheContents& now) {
  return CapacityOverCap(c.capacity_bytes, need, now.cap_bytes);
}

// The objects a grow adds past the first batch (at least 1).
uint32_t Batch(const CapacityLimits& lim, size_t cls) {
  return lim.step[cls] > 0 ? lim.step[cls] : 1;
}

// Capacity a class reaches with its first grow: its initial, or a batch.
uint32_t FirstStep(const CapacityLimits& lim, size_t cls) {
  return lim.initial[cls] > Batch(lim, cls) ? lim.initial[cls] : Batch(lim, cls);
}

// Objects of size `size` that cover `bytes`.
size_t ObjectsFor(size_t bytes, size_t size) {
  return (bytes + size - 1) / size;
}

// Missed since the decay clock last looked.
bool MissedSinceLook(const CacheCapacity& c, size_t cls) {
  return static_cast<int32_t>(Relaxed(&c.missed_at[cls]) - c.clock_at_look) > 0;
}

// Neither used nor missed between the last two looks, nor missed since (where the
// limits ask for it: idle_needs_look).
bool LeftAloneAtLook(const CapacityLimits& lim, const CacheCapacity& c, size_t cls) {
  if (!lim.idle_needs_look) return true;
  return !c.active_at_look.Contains(cls) && !MissedSinceLook(c, cls);
}

// Lowers cls to `to` (below its capacity), marking it for the caller to shrink.
void Lower(const CapacityLimits& lim, CacheCapacity* c, size_t cls, uint32_t to, ClassSet* shrunk) {
  CapacitySet(lim, c, cls, to);
  shrunk->Assign(cls, true);
}

// Capacity the other classes do not use (above what they hold and their initial
// capacity), round-robin from the class after the last one taken from, each giving
// what is still needed as far as it can. A class below its initial capacity (`cls`
// robbed while it was idle) may take from the objects they hold above their initial.
void TakeUnused(const CapacityLimits& lim, CacheCapacity* c, size_t cls, size_t need,
                const CacheContents& now, ClassSet* shrunk) {
  const bool restoring = c->capacity[cls] < lim.initial[cls];
  for (int n = c->limited.Count(); n > 0 && Over(*c, need, now) > 0; --n) {
    size_t v = c->limited.NextFrom(c->steal_cursor + 1);
    if (v == kNumClasses) v = c->limited.NextFrom(1);
    if (v == kNumClasses) return;
    c->steal_cursor = static_cast<uint32_t>(v);
    if (v == cls) continue;
    const uint32_t length = now.Length(v);
    uint32_t floor = lim.initial[v];
    if (!restoring && length > floor) floor = length;
    if (c->capacity[v] <= floor) continue;
    size_t take = ObjectsFor(Over(*c, need, now), lim.size[v]);
    if (take > c->capacity[v] - floor) take = c->capacity[v] - floor;
    Lower(lim, c, v, c->capacity[v] - static_cast<uint32_t>(take), shrunk);
    const uint32_t lost = Relaxed(&c->regain[v]) + static_cast<uint32_t>(take);
    SetRelaxed(&c->regain[v], lost < lim.max[v] ? lost : lim.max[v]);
  }
}

// Capacity of idle classes, largest objects first, in groups (see kIdleGroup): what is
// needed is shared out among a group's classes (each gives its share of what the ones
// before it left), and each also gives its unused capacity, which would otherwise stand
// in for its objects.
void TakeIdle(const CapacityLimits& lim, CacheCapacity* c, size_t cls, size_t need,
              const CacheContents& now, ClassSet* shrunk) {
  const uint32_t clock = Relaxed(&c->miss_clock);
  // No class can turn idle before idle_scan_after: a scan then would find nothing.
  if (Over(*c, need, now) == 0 || static_cast<int32_t>(clock - c->idle_scan_after) < 0) return;
  uint32_t next_idle = clock + kIdleMisses;  // classes seen missing later are active now
  size_t taken_bytes = 0;
  // Class 0 is never a member, so v - 1 does not wrap.
  size_t v = c->limited.PrevFrom(kNumClasses - 1);
  while (v != kNumClasses && (Over(*c, need, now) > 0 || taken_bytes < kIdleEvictBytes)) {
    size_t idle[kIdleGroup];
    int found = 0;
    for (; v != kNumClasses && found < kIdleGroup; v = c->limited.PrevFrom(v - 1)) {
      // One not left alone can turn idle only at a look, which resets the hint.
      if (v == cls || !LeftAloneAtLook(lim, *c, v)) continue;
      const uint32_t idle_at = Relaxed(&c->missed_at[v]) + kIdleMisses;
      if (static_cast<int32_t>(clock - idle_at) >= 0) {
        idle[found++] = v;
      } else if (static_cast<int32_t>(idle_at - next_idle) < 0) {
        next_idle = idle_at;
      }
    }
    const size_t over = Over(*c, need, now);
    const size_t least = taken_bytes < kIdleEvictBytes ? kIdleEvictBytes - taken_bytes : 0;
    size_t goal = over > least ? over : least;
    for (int i = 0; i < found; ++i) {
      const size_t k = idle[i];
      const size_t size = lim.size[k];
      const size_t share =
          (goal + static_cast<size_t>(found - i) - 1) / static_cast<size_t>(found - i);
      const uint32_t length = now.Length(k);
      const uint32_t unused = c->capacity[k] > length ? c->capacity[k] - length : 0;
      size_t take = ObjectsFor(share + Bytes(lim, k, unused), size);
      if (take > c->capacity[k]) take = c->capacity[k];
      if (take == 0) continue;
      Lower(lim, c, k, c->capacity[k] - static_cast<uint32_t>(take), shrunk);
      const size_t handed_back = take > unused ? (take - unused) * size : 0;
      goal = goal > handed_back ? goal - handed_back : 0;
      taken_bytes += handed_back;
    }
  }
  if (Over(*c, need, now) > 0) c->idle_scan_after = next_idle;
}

}  // namespace

void CapacityInit(const CapacityLimits& lim, CacheCapacity* c) {
  c->capacity_bytes = 0;
  c->steal_cursor = 0;
  c->limited = ClassSet{};
  c->active_at_look = ClassSet{};
  SetRelaxed(&c->miss_clock, 0);
  c->clock_at_look = 0;
  c->idle_scan_after = 0;
  for (size_t cls = 0; cls < kNumClasses; ++cls) {
    c->capacity[cls] = 0;
    CapacitySet(lim, c, cls, lim.initial[cls]);
    SetRelaxed(&c->misses[cls], 0);
    SetRelaxed(&c->missed_at[cls], 0);
    SetRelaxed(&c->refusals[cls], 0);
    SetRelaxed(&c->earned[cls], 0);
    SetRelaxed(&c->regain[cls], 0);
  }
}

uint32_t CapacityGrowStep(const CapacityLimits& lim, const CacheCapacity& c, size_t cls) {
  uint32_t cap = Relaxed(&c.capacity[cls]);
  if (cap >= lim.max[cls]) return 0;
  uint32_t step = CapacityStep(cap, lim.initial[cls], Batch(lim, cls));
  const uint32_t regain = Relaxed(&c.regain[cls]);
  if (regain > step) step = regain < Batch(lim, cls) ? regain : Batch(lim, cls);
  return step < lim.max[cls] - cap ? step : lim.max[cls] - cap;
}

bool CapacityNoteMiss(const CapacityLimits& lim, CacheCapacity* c, size_t cls, bool ran_dry) {
  const uint32_t clock = Relaxed(&c->miss_clock) + 1;
  SetRelaxed(&c->miss_clock, clock);
  SetRelaxed(&c->missed_at[cls], clock);
  const uint32_t step = Batch(lim, cls);
  if (ran_dry && !lim.frees_earn_by_fetching) {
    SetRelaxed(&c->earned[cls], step);
  } else if (!ran_dry && Relaxed(&c->capacity[cls]) >= step && Relaxed(&c->earned[cls]) < step) {
    return false;
  }
  const uint32_t misses = Relaxed(&c->misses[cls]) + 1;
  SetRelaxed(&c->misses[cls], misses);
  const uint32_t refusals = Relaxed(&c->refusals[cls]);
  return misses >= (lim.misses_to_grow << refusals) && CapacityGrowStep(lim, *c, cls) > 0;
}

void CapacitySet(const CapacityLimits& lim, CacheCapacity* c, size_t cls, uint32_t capacity) {
  if (capacity > lim.max[cls]) capacity = lim.max[cls];
  c->capacity_bytes -= Bytes(lim, cls, c->capacity[cls]);
  c->capacity_bytes += Bytes(lim, cls, capacity);
  SetRelaxed(&c->capacity[cls], capacity);
  c->limited.Assign(cls, capacity > 0);
}

bool CapacityGrow(const CapacityLimits& lim, CacheCapacity* c, size_t cls, bool from_active,
                  const CacheContents& now, ClassSet* shrunk) {
  const uint32_t step = CapacityGrowStep(lim, *c, cls);
  if (step == 0) return false;
  const size_t need = Bytes(lim, cls, step);
  const bool may_take_idle =
      from_active || lim.overflow_takes_idle || c->capacity[cls] < FirstStep(lim, cls);
  if (Over(*c, need, now) > 0) {
    if (from_active) TakeUnused(lim, c, cls, need, now, shrunk);
    if (may_take_idle) TakeIdle(lim, c, cls, need, now, shrunk);
  }
  // Counted again from 0 either way: a class refused at the cap asks again after as
  // many misses as one that grew, not on every miss. A refusal the limits made (an
  // overflow that may not take idle room) is not counted: it would hold back the grows
  // the class asks for when it runs dry.
  SetRelaxed(&c->misses[cls], 0);
  if (Over(*c, need, now) > 0) {
    const uint32_t refusals = Relaxed(&c->refusals[cls]);
    if (refusals < kMaxRefusals) SetRelaxed(&c->refusals[cls], refusals + 1);
    return false;
  }
  SetRelaxed(&c->refusals[cls], 0);
  CapacitySet(lim, c, cls, c->capacity[cls] + step);
  const uint32_t regain = Relaxed(&c->regain[cls]);
  SetRelaxed(&c->regain[cls], regain > step ? regain - step : 0);
  // Spent: all of it where running dry earns it; a step of what it fetched where
  // fetching does, when grown on its frees past a step.
  const uint32_t batch = Batch(lim, cls);
  if (!lim.frees_earn_by_fetching) {
    SetRelaxed(&c->earned[cls], 0);
  } else if (!from_active && c->capacity[cls] > batch) {
    const uint32_t earned = Relaxed(&c->earned[cls]);
    SetRelaxed(&c->earned[cls], earned > batch ? earned - batch : 0);
  }
  return true;
}

void CapacityFit(const CapacityLimits& lim, CacheCapacity* c, size_t cls, const CacheContents& now,
                 ClassSet* shrunk) {
  if (Over(*c, 0, now) == 0) return;
  TakeUnused(lim, c, cls, 0, now, shrunk);
  TakeIdle(lim, c, cls, 0, now, shrunk);
}

void CapacityNoteFetch(const CapacityLimits& lim, CacheCapacity* c, size_t cls, uint32_t objects) {
  if (!lim.frees_earn_by_fetching) return;
  constexpr uint32_t kMostEarned = uint32_t{1} << 30;
  const uint32_t earned = Relaxed(&c->earned[cls]);
  SetRelaxed(&c->earned[cls], objects < kMostEarned - earned ? earned + objects : kMostEarned);
}

void CapacityDecayTick(const CapacityLimits& lim, CacheCapacity* c, const ClassSet& used,
                       const ClassSet& holding, ClassSet* idle) {
  const uint32_t clock = Relaxed(&c->miss_clock);
  for (size_t cls = 1; cls < kNumClasses; ++cls) {
    SetRelaxed(&c->refusals[cls], 0);  // idle classes may have given up room since
    const bool active = used.Contains(cls) || MissedSinceLook(*c, cls);
    c->active_at_look.Assign(cls, active);
    if (active) continue;
    SetRelaxed(&c->regain[cls], 0);  // left alone: it starts again from one at a time
    const bool grown = c->capacity[cls] > lim.initial[cls];
    if (!grown && !holding.Contains(cls)) continue;
    if (grown) CapacitySet(lim, c, cls, lim.initial[cls]);
    SetRelaxed(&c->misses[cls], 0);
    idle->Assign(cls, true);
  }
  c->clock_at_look = clock;
  c->idle_scan_after = clock;  // classes may have turned idle at this look
}

}  // namespace jsmalloc
