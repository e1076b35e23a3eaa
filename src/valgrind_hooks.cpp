// memcheck support (valgrind_hooks.h). Every function here runs on slow paths only.
#include "valgrind_hooks.h"

#include <errno.h>

#include <cstdint>

#if defined(JSMALLOC_HAVE_VALGRIND)
#include <valgrind/memcheck.h>
#include <valgrind/valgrind.h>

#include "backend/heap_region.h"
#include "free_list.h"
#include "frontend/thread_cache.h"
#include "middle/middle.h"
#include "middle/span_source.h"
#include "secure.h"
#include "size_class.h"
#endif

namespace jsmalloc {

#if defined(JSMALLOC_HAVE_VALGRIND)

constinit bool g_under_memcheck = false;

namespace {

// The shared empty cache's refill in memcheck mode: every small block, fetched one at
// a time from the middle tier (as for a thread whose cache is gone) and registered.
// size: what the program asked for, from malloc's register.
void* ValgrindRefill(size_t size, size_t cls) {
  ValgrindQuiet quiet;
  void* obj = nullptr;
  uintptr_t run = 0;
  int run_count = 0;
  const size_t class_size = kClasses[cls].size;
  if (MiddleRemove(cls, &obj, 1, &run, &run_count, {.max_run_bytes = class_size}) == 0) {
    if (run_count == 0) {
      errno = ENOMEM;
      return nullptr;
    }
    obj = reinterpret_cast<void*>(run);
    MiddleReturnRun(cls, run + class_size, static_cast<uint32_t>(run_count - 1));
  }
  static_cast<uintptr_t*>(obj)[1] = 0;  // as HandOut: no free marker in a live block
  // The secure library registers the request itself, without its tag (secure.cpp).
  if constexpr (!kSecure) ValgrindAllocated(obj, size, class_size, false);
  return obj;
}

}  // namespace

void ValgrindInit() {
  if (RUNNING_ON_VALGRIND == 0) return;
  // Only memcheck answers its own requests (with -1): other tools, callgrind counting
  // the fast paths' instructions among them (tests/fastpath), see jsmalloc unchanged.
  int probe = 0;
  if (VALGRIND_MAKE_MEM_DEFINED(&probe, sizeof probe) == 0) return;
  if (g_pagemap.tags == nullptr) return;  // no heap: everything is huge and slow
  // The free fast path's divisibility limits (heap_region.h) all 0: no pointer passes
  // for an object, and free goes to FreeSlow before it reads one. The slow path tests
  // with kClassMagic itself. Not in the secure library, which has no such fast path.
  if constexpr (!kSecure) {
    auto* limits = reinterpret_cast<uint64_t*>(g_pagemap.tags) - 512;
    for (size_t i = 0; i < 256; ++i) limits[2 * i + 1] = 0;
  }
  // The heap is one read-write reservation, most of it never used: to memcheck,
  // inaccessible but for the blocks handed out. Else its leak search reads every page
  // of it (minutes), and a read of a never-used object would pass.
  VALGRIND_MAKE_MEM_NOACCESS(reinterpret_cast<void*>(g_pagemap.base), g_pagemap.size);
  // g_pagemap.base points at the heap's first page, and memcheck's leak search would
  // take it for a pointer to a block there: the page is kept, never handed out.
  AllocateSpan(1, 1, kPageLarge);
  g_empty_cache.refill = &ValgrindRefill;
  __atomic_store_n(&g_under_memcheck, true, __ATOMIC_RELEASE);
}

void ValgrindAllocated(void* p, size_t size, size_t usable, bool zeroed) {
  VALGRIND_MALLOCLIKE_BLOCK(p, size, 0, zeroed ? 1 : 0);
  // memcheck's redzones would be inside the next block; the slack is the redzone here.
  if (usable > size) VALGRIND_MAKE_MEM_NOACCESS(static_cast<char*>(p) + size, usable - size);
}

void ValgrindFreed(void* p) {
  VALGRIND_FREELIKE_BLOCK(p, 0);
}

size_t ValgrindBlockSize(const void* p, size_t usable) {
  ValgrindQuiet quiet;  // the check would report the slack
  uintptr_t bad = VALGRIND_CHECK_MEM_IS_ADDRESSABLE(p, usable);
  return bad == 0 ? usable : bad - reinterpret_cast<uintptr_t>(p);
}

void ValgrindGrowToUsable(void* p, size_t usable) {
  size_t size = ValgrindBlockSize(p, usable);
  if (size < usable) VALGRIND_RESIZEINPLACE_BLOCK(p, size, usable, 0);
}

void ValgrindMarkDefined(void* p, size_t size) {
  VALGRIND_MAKE_MEM_DEFINED(p, size);
}

void ValgrindQuiet::Disable() {
  VALGRIND_DISABLE_ERROR_REPORTING;
}
void ValgrindQuiet::Enable() {
  VALGRIND_ENABLE_ERROR_REPORTING;
}

#else  // no valgrind headers: nothing to tell

void ValgrindInit() {}
void ValgrindAllocated(void*, size_t, size_t, bool) {}
void ValgrindFreed(void*) {}
size_t ValgrindBlockSize(const void*, size_t usable) {
  return usable;
}
void ValgrindGrowToUsable(void*, size_t) {}
void ValgrindMarkDefined(void*, size_t) {}
void ValgrindQuiet::Disable() {}
void ValgrindQuiet::Enable() {}

#endif

}  // namespace jsmalloc
