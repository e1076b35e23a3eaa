// The transfer cache of one size class: a bounded stack of objects that thread caches
// hand each other in batches, so a batch moves with one lock round-trip and never
// touches the central free list's spans.
#pragma once

#include <cstdint>

#include "lock.h"

namespace jsmalloc {

class TransferCache {
 public:
  // Takes all n objects, or none (returns false) when it has no room.
  bool Insert(void* const* objs, int n);
  // Moves up to n objects into out; returns how many.
  int Remove(void** out, int n);

  int count() const { return __atomic_load_n(&count_, __ATOMIC_RELAXED); }
  // Batches moved in or out so far: unchanged over the decay time, the cache is idle.
  uint32_t moves() const { return __atomic_load_n(&moves_, __ATOMIC_RELAXED); }
  Mutex& lock() { return lock_; }
  int capacity() const { return capacity_; }
  void set_capacity(int c) { capacity_ = c; }

 private:
  Mutex lock_;
  void** slots_ = nullptr;  // allocated from the metadata arena on first insert
  int count_ = 0;
  int capacity_ = 0;
  uint32_t moves_ = 0;
};

}  // namespace jsmalloc
