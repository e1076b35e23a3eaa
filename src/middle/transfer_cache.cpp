#include "middle/transfer_cache.h"

#include "backend/meta_arena.h"

namespace jsmalloc {

bool TransferCache::Insert(void* const* objs, int n) {
  LockGuard g(lock_);
  if (count_ + n > capacity_) return false;
  if (slots_ == nullptr) {
    slots_ = static_cast<void**>(g_meta.Allocate(sizeof(void*) * static_cast<size_t>(capacity_)));
    if (slots_ == nullptr) return false;
  }
  for (int i = 0; i < n; ++i) slots_[count_ + i] = objs[i];
  __atomic_store_n(&count_, count_ + n, __ATOMIC_RELAXED);
  __atomic_store_n(&moves_, moves_ + 1, __ATOMIC_RELAXED);
  return true;
}

int TransferCache::Remove(void** out, int n) {
  // Seen empty without the lock: a batch inserted meanwhile waits for the next look, as
  // it would had it come a moment later. Saves a lock per refill where the cache is
  // mostly empty (one thread, whose frees bypass it).
  if (count() == 0) return 0;
  LockGuard g(lock_);
  if (n > count_) n = count_;
  int base = count_ - n;
  for (int i = 0; i < n; ++i) out[i] = slots_[base + i];
  __atomic_store_n(&count_, base, __ATOMIC_RELAXED);
  if (n > 0) __atomic_store_n(&moves_, moves_ + 1, __ATOMIC_RELAXED);
  return n;
}

}  // namespace jsmalloc
