#include "os/vm.h"

#include <errno.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdint>

#include "common.h"

namespace jsmalloc::os {

namespace {
using Reclaimer = bool (*)();
constinit Reclaimer g_reclaim = nullptr;

// Whether a call the kernel just refused is worth repeating: it lacked address space
// and the reclaimer gave some back.
bool Reclaimed() {
  Reclaimer reclaim = __atomic_load_n(&g_reclaim, __ATOMIC_ACQUIRE);
  return errno == ENOMEM && reclaim != nullptr && reclaim();
}
}  // namespace

void SetAddressSpaceReclaimer(bool (*reclaim)()) {
  __atomic_store_n(&g_reclaim, reclaim, __ATOMIC_RELEASE);
}

void* Reserve(size_t size, size_t align) {
  if (align < 4096) align = 4096;
  size_t padded = size + align - 4096;
  if (padded < size) return nullptr;
  int saved = errno;
  void* raw = mmap(nullptr, padded, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (raw == MAP_FAILED && Reclaimed())
    raw = mmap(nullptr, padded, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
               -1, 0);
  errno = saved;  // a failed reservation is reported by the caller as ENOMEM
  if (raw == MAP_FAILED) return nullptr;
  uintptr_t start = reinterpret_cast<uintptr_t>(raw);
  uintptr_t aligned = RoundUp(start, align);
  if (aligned > start) munmap(raw, aligned - start);
  uintptr_t end = start + padded;
  if (end > aligned + size) munmap(reinterpret_cast<void*>(aligned + size), end - aligned - size);
  return reinterpret_cast<void*>(aligned);
}

bool MapFixed(void* p, size_t size) {
#ifndef MAP_FIXED_NOREPLACE
  constexpr int MAP_FIXED_NOREPLACE = 0x100000;
#endif
  int saved = errno;
  void* q = mmap(p, size, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
  // Kernels before 4.17 take the flag for a hint and may map elsewhere.
  if (q != MAP_FAILED && q != p) munmap(q, size);
  errno = saved;
  return q == p;
}

void Unmap(void* p, size_t size) {
  int saved = errno;
  munmap(p, size);
  errno = saved;
}

bool Protect(void* p, size_t size, bool accessible) {
  int saved = errno;
  bool ok = mprotect(p, size, accessible ? PROT_READ | PROT_WRITE : PROT_NONE) == 0;
  errno = saved;
  return ok;
}

bool Decommit(void* p, size_t size) {
  int saved = errno;
  bool ok = madvise(p, size, MADV_DONTNEED) == 0;
  errno = saved;
  return ok;
}

bool Populate(void* p, size_t size) {
#ifndef MADV_POPULATE_WRITE
  constexpr int MADV_POPULATE_WRITE = 23;
#endif
  // One failure with EINVAL means the kernel does not know the advice: stop asking.
  static constinit bool unsupported = false;
  if (__atomic_load_n(&unsupported, __ATOMIC_RELAXED)) return false;
  int saved = errno;
  bool ok = madvise(p, size, MADV_POPULATE_WRITE) == 0;
  if (!ok && errno == EINVAL) __atomic_store_n(&unsupported, true, __ATOMIC_RELAXED);
  errno = saved;
  return ok;
}

void AdviseHugepages(void* p, size_t size) {
  int saved = errno;
  madvise(p, size, MADV_HUGEPAGE);
  errno = saved;
}

void* Remap(void* p, size_t old_size, size_t new_size) {
  int saved = errno;
  void* q = mremap(p, old_size, new_size, MREMAP_MAYMOVE);
  if (q == MAP_FAILED && Reclaimed()) q = mremap(p, old_size, new_size, MREMAP_MAYMOVE);
  errno = saved;
  return q == MAP_FAILED ? nullptr : q;
}

void Shrink(void* p, size_t old_size, size_t new_size) {
  if (new_size < old_size) Unmap(static_cast<char*>(p) + new_size, old_size - new_size);
}

size_t AddressSpaceLimit() {
  struct rlimit rl;
  if (getrlimit(RLIMIT_AS, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return SIZE_MAX;
  return rl.rlim_cur;
}

}  // namespace jsmalloc::os
