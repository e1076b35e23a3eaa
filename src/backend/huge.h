// Huge allocations (from 64 MiB up, or anything the heap region cannot hold): each is
// its own mapping, unmapped on free, resized with mremap. A small hash table remembers
// every live mapping, and freed ones until their slot is needed, so a free() of an
// unknown pointer or a second free() is recognised.
#pragma once

#include <cstddef>
#include <cstdint>

#include "lock.h"

namespace jsmalloc {

class HugeRegistry {
 public:
  enum class Lookup { kLive, kFreed, kUnknown };

  void* Allocate(size_t size, size_t align);
  // Unmaps p if it is a live huge block.
  Lookup Free(void* p);
  // Usable size of live huge block p, or 0.
  size_t UsableSize(const void* p, Lookup* state);
  // Resizes live huge block p to `size` (>= the huge threshold), possibly moving it.
  // nullptr when the OS refuses; p stays valid then.
  void* Resize(void* p, size_t size);

  size_t bytes() const { return bytes_; }
  size_t count() const { return live_; }
  Mutex& lock() { return lock_; }

 private:
  // The address is kept complemented (never 0: no block starts at the last byte), so
  // that the table holds no pointer to a block: memcheck's leak check, which scans
  // memory for pointers, then reports a huge block the program dropped as lost, not
  // "still reachable" from here.
  struct Entry {
    uintptr_t hidden_addr;  // ~address; 0: an empty slot
    size_t size;            // mapped bytes; 0 marks a freed block (tombstone)
  };
  Entry* Find(uintptr_t addr);
  bool Insert(uintptr_t addr, size_t size);
  bool Grow();

  Mutex lock_;
  Entry* table_ = nullptr;
  size_t capacity_ = 0;
  size_t used_ = 0;  // live + tombstones
  size_t live_ = 0;
  size_t bytes_ = 0;
};

extern constinit HugeRegistry g_huge;

}  // namespace jsmalloc
