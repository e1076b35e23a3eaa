// The allocator's entry points beyond the inline fast paths (fast_path.h). The C API,
// the prefixed API and the C++ operators are thin wrappers over these.
#pragma once

#include <cstddef>

#include "fast_path.h"
#include "secure.h"

namespace jsmalloc {

void* Calloc(size_t count, size_t size);
void* Realloc(void* p, size_t size);
// align: a power of two (callers check). Returns nullptr with errno ENOMEM on failure.
void* AlignedAlloc(size_t align, size_t size);
size_t UsableSize(const void* p);
size_t ReleaseFreeMemory();
// align: what the caller says p was allocated with (0: no alignment was asked for).
void CheckSizedFree(void* p, size_t size, size_t align);

// Internal (secure.cpp): a large block (or a huge one) of at least size bytes and
// whether it may hold old data, and the request of a large block, whose canary follows
// it (in the secure library, up to its last page, the guard). *last_closed: the block's
// last page is inaccessible already (taken from freed large blocks' closed pages).
void* AllocateLarge(size_t size, size_t align, bool* maybe_dirty, bool* last_closed);
void SetLargeRequest(void* p, size_t requested);
// Block p (nullptr: passed through), of `size` bytes asked with `align`, is one the
// sampler picked: recorded by the profiler, its span marked sampled (a huge mapping has
// none), so that its free takes it out of the profile. Returns p. In the entry section
// (common.h): reached by tail calls, it may be a sample's last allocator frame.
void* RecordSampled(void* p, size_t size, size_t align);
// Reports "heap overflow" if the canary after large block p's request was overwritten.
void CheckLargeRequest(const void* p);
// Grows large block p in place to at least size bytes if the pages after it are free
// and size stays below the huge threshold; *maybe_dirty: whether the pages it gained
// may hold old data. Returns false, changing nothing, when it cannot.
bool ExtendLarge(void* p, size_t size, bool* maybe_dirty);

// Whether a sized free of p (not aligned) may be wrong, in a few instructions: a small
// block whose class does not fit the size (CheckSizedFree's rule), or any block that
// is not small, whose free is a slow call anyway. CheckSizedFree decides.
JS_FAST_PATH bool SizedFreeNeedsCheck(const void* p, size_t size) {
  uintptr_t offset = reinterpret_cast<uintptr_t>(p) - g_pagemap.base;
  if (offset >= g_pagemap.size) return p != nullptr;
  size_t cls = PageClass(offset >> kPageShift);
  if (cls == 0 || cls >= kNumClasses) return true;
  size_t usable = kClasses[cls].size;
  return size > usable || size * 2 + kPageSize < usable;
}

// free with the size (and alignment) the caller believes the block has: C23 free_sized
// and free_aligned_sized, the sized C++ deletes. Debug and secure builds check both on
// every call; release builds check the size where that costs a few instructions (it
// must fit the block's class; the option is read only when it does not) and take the
// alignment as a hint. JSMALLOC_CHECK_SIZED_FREE=0 turns the checks off.
JS_FAST_PATH void FreeSized(void* p, size_t size, size_t align = 0) {
#if defined(JSMALLOC_DEBUG) || defined(JSMALLOC_SECURE)
  CheckSizedFree(p, size, align);
#else
  if (align == 0 && JS_UNLIKELY(SizedFreeNeedsCheck(p, size))) CheckSizedFree(p, size, 0);
#endif
  Free(p);
}

}  // namespace jsmalloc
