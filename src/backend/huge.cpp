#include "backend/huge.h"

#include "backend/meta_arena.h"
#include "common.h"
#include "os/vm.h"

namespace jsmalloc {

constinit HugeRegistry g_huge;

namespace {
constexpr size_t kOsPage = 4096;
size_t Hash(uintptr_t addr, size_t capacity) {
  return static_cast<size_t>(((addr >> 12) * 0x9e3779b97f4a7c15ull) >> 20) & (capacity - 1);
}
uintptr_t Hidden(uintptr_t addr) {
  return ~addr;
}
}  // namespace

HugeRegistry::Entry* HugeRegistry::Find(uintptr_t addr) {
  if (capacity_ == 0) return nullptr;
  for (size_t i = Hash(addr, capacity_), n = 0; n < capacity_; i = (i + 1) & (capacity_ - 1), ++n) {
    if (table_[i].hidden_addr == Hidden(addr)) return &table_[i];
    if (table_[i].hidden_addr == 0) return nullptr;
  }
  return nullptr;
}

bool HugeRegistry::Grow() {
  size_t cap = capacity_ == 0 ? 1024 : capacity_ * 2;
  auto* fresh = static_cast<Entry*>(g_meta.Allocate(cap * sizeof(Entry)));
  if (fresh == nullptr) return false;
  Entry* old = table_;
  size_t old_cap = capacity_;
  table_ = fresh;
  capacity_ = cap;
  used_ = 0;
  // Tombstones are dropped here: they only sharpen messages, never correctness.
  for (size_t i = 0; i < old_cap; ++i) {
    if (old[i].hidden_addr != 0 && old[i].size != 0)
      Insert(Hidden(old[i].hidden_addr), old[i].size);
  }
  return true;  // the old table stays in the metadata arena (a few KiB)
}

bool HugeRegistry::Insert(uintptr_t addr, size_t size) {
  if (Entry* e = Find(addr)) {  // a tombstone of an earlier block at this address
    e->size = size;
    return true;
  }
  if ((used_ + 1) * 4 > capacity_ * 3 && !Grow()) return false;
  for (size_t i = Hash(addr, capacity_);; i = (i + 1) & (capacity_ - 1)) {
    if (table_[i].hidden_addr == 0) {
      table_[i] = Entry{Hidden(addr), size};
      ++used_;
      return true;
    }
  }
}

void* HugeRegistry::Allocate(size_t size, size_t align) {
  size_t mapped = RoundUp(size, kOsPage);
  if (mapped < size) return nullptr;
  void* p = os::Reserve(mapped, align < kOsPage ? kOsPage : align);
  if (p == nullptr) return nullptr;
  LockGuard g(lock_);
  if (!Insert(reinterpret_cast<uintptr_t>(p), mapped)) {
    os::Unmap(p, mapped);
    return nullptr;
  }
  ++live_;
  bytes_ += mapped;
  return p;
}

HugeRegistry::Lookup HugeRegistry::Free(void* p) {
  size_t size;
  {
    LockGuard g(lock_);
    Entry* e = Find(reinterpret_cast<uintptr_t>(p));
    if (e == nullptr) return Lookup::kUnknown;
    if (e->size == 0) return Lookup::kFreed;
    size = e->size;
    e->size = 0;
    --live_;
    bytes_ -= size;
  }
  os::Unmap(p, size);
  return Lookup::kLive;
}

size_t HugeRegistry::UsableSize(const void* p, Lookup* state) {
  LockGuard g(lock_);
  Entry* e = Find(reinterpret_cast<uintptr_t>(p));
  if (e == nullptr) {
    *state = Lookup::kUnknown;
    return 0;
  }
  *state = e->size == 0 ? Lookup::kFreed : Lookup::kLive;
  return e->size;
}

void* HugeRegistry::Resize(void* p, size_t size) {
  size_t mapped = RoundUp(size, kOsPage);
  if (mapped < size) return nullptr;
  LockGuard g(lock_);
  Entry* e = Find(reinterpret_cast<uintptr_t>(p));
  if (e == nullptr || e->size == 0) return nullptr;
  size_t old = e->size;
  if (mapped == old) return p;
  if (mapped < old) {
    os::Shrink(p, old, mapped);
    e->size = mapped;
    bytes_ -= old - mapped;
    return p;
  }
  void* q = os::Remap(p, old, mapped);
  if (q == nullptr) return nullptr;
  if (q == p) {
    e->size = mapped;
  } else {
    e->size = 0;  // the old address is now a tombstone
    if (!Insert(reinterpret_cast<uintptr_t>(q), mapped)) {
      // Out of metadata: undo the move is not possible; keep the block usable but
      // untracked would break free(), so fail loudly instead.
      InternalError("huge block table full", __FILE__, __LINE__);
    }
  }
  bytes_ += mapped - old;
  return q;
}

}  // namespace jsmalloc
