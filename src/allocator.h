// The allocator's entry points beyond the inline fast paths (fast_path.h). The C API,
// the prefixed API and the C++ operators are thin wrappers over these.
#pragma once

#include <cstddef>

#include "fast_path.h"

namespace jsmalloc {

void* Calloc(size_t count, size_t size);
void* Realloc(void* p, size_t size);
// align: a power of two (callers check). Returns nullptr with errno ENOMEM on failure.
void* AlignedAlloc(size_t align, size_t size);
size_t UsableSize(const void* p);
size_t ReleaseFreeMemory();
// align: what the caller says p was allocated with (0: no alignment was asked for).
void CheckSizedFree(void* p, size_t size, size_t align);

// free with the size (and alignment) the caller believes the block has: C23 free_sized
// and free_aligned_sized, the sized C++ deletes. Release builds ignore both (no option
// is read on a fast path); debug and secure builds check them unless
// JSMALLOC_CHECK_SIZED_FREE=0.
JS_FAST_PATH void FreeSized(void* p, size_t size, size_t align = 0) {
#if defined(JSMALLOC_DEBUG) || defined(JSMALLOC_SECURE)
  CheckSizedFree(p, size, align);
#else
  (void)size;
  (void)align;
#endif
  Free(p);
}

}  // namespace jsmalloc
