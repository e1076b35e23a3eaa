// The C allocation API under its standard names: with LD_PRELOAD, or when linked,
// these replace glibc's malloc for the whole process (glibc's own internal calls go
// through the same symbols). The __libc_* names catch code that calls glibc's
// implementation directly.
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>

#include "allocator.h"
#include "stats.h"

using namespace jsmalloc;

namespace {

JS_ENTRY_CODE int PosixMemalign(void** out, size_t align, size_t size) {
  if (!IsPowerOfTwo(align) || align % sizeof(void*) != 0) return EINVAL;
  int saved = errno;
  void* p = AlignedAlloc(align, size);
  if (p == nullptr) return ENOMEM;
  errno = saved;
  *out = p;
  return 0;
}

JS_ENTRY_CODE void* Memalign(size_t align, size_t size) {
  if (align != 0 && !IsPowerOfTwo(align)) {
    errno = EINVAL;
    return nullptr;
  }
  return AlignedAlloc(align, size);
}

JS_ENTRY_CODE void* AlignedAllocC11(size_t align, size_t size) {
  if (!IsPowerOfTwo(align)) {
    errno = EINVAL;
    return nullptr;
  }
  return AlignedAlloc(align, size);
}

JS_ENTRY_CODE void* Reallocarray(void* p, size_t count, size_t size) {
  size_t bytes;
  if (__builtin_mul_overflow(count, size, &bytes)) {
    errno = ENOMEM;
    return nullptr;
  }
  return Realloc(p, bytes);
}

constexpr size_t kOsPage = 4096;

JS_ENTRY_CODE void* Pvalloc(size_t size) {
  size_t rounded = RoundUp(size == 0 ? 1 : size, kOsPage);
  if (rounded < size) {
    errno = ENOMEM;
    return nullptr;
  }
  return AlignedAlloc(kOsPage, rounded);
}

struct mallinfo2 Mallinfo2() {
  js_stats_t s;
  CollectStats(&s);
  struct mallinfo2 m = {};
  m.arena = s.committed - s.huge;
  m.ordblks = 0;
  m.hblks = 0;
  m.hblkhd = s.huge;
  m.uordblks = s.in_use;
  m.fordblks = s.committed > s.in_use ? s.committed - s.in_use : 0;
  m.keepcost = s.page_heap_free;
  return m;
}

int ClampInt(size_t v) {
  return v > 0x7fffffff ? 0x7fffffff : static_cast<int>(v);
}

}  // namespace

extern "C" {

JS_FAST_ENTRY JS_EXPORT void* malloc(size_t size) noexcept {
  return Malloc(size);
}
JS_FAST_ENTRY JS_EXPORT void free(void* p) noexcept {
  Free(p);
}
// C23. glibc 2.36 has neither; programs built against a libc that has them find them here.
JS_EXPORT void free_sized(void* p, size_t size) noexcept {
  FreeSized(p, size);
}
JS_EXPORT void free_aligned_sized(void* p, size_t align, size_t size) noexcept {
  FreeSized(p, size, align);
}
JS_EXPORT void* calloc(size_t count, size_t size) noexcept {
  return Calloc(count, size);
}
JS_EXPORT void* realloc(void* p, size_t size) noexcept {
  return Realloc(p, size);
}
JS_EXPORT void* reallocarray(void* p, size_t count, size_t size) noexcept {
  return Reallocarray(p, count, size);
}
JS_EXPORT void* memalign(size_t align, size_t size) noexcept {
  return Memalign(align, size);
}
JS_EXPORT int posix_memalign(void** out, size_t align, size_t size) noexcept {
  return PosixMemalign(out, align, size);
}
JS_EXPORT void* aligned_alloc(size_t align, size_t size) noexcept {
  return AlignedAllocC11(align, size);
}
JS_EXPORT void* valloc(size_t size) noexcept {
  return AlignedAlloc(kOsPage, size);
}
JS_EXPORT void* pvalloc(size_t size) noexcept {
  return Pvalloc(size);
}
JS_EXPORT size_t malloc_usable_size(void* p) noexcept {
  return UsableSize(p);
}
JS_EXPORT int malloc_trim(size_t) noexcept {
  return ReleaseFreeMemory() > 0 ? 1 : 0;
}
JS_EXPORT int mallopt(int, int) noexcept {
  return 1;
}  // accepted and ignored
JS_EXPORT struct mallinfo2 mallinfo2(void) noexcept {
  return Mallinfo2();
}
JS_EXPORT struct mallinfo mallinfo(void) noexcept {
  struct mallinfo2 m2 = Mallinfo2();
  struct mallinfo m = {};
  m.arena = ClampInt(m2.arena);
  m.hblkhd = ClampInt(m2.hblkhd);
  m.uordblks = ClampInt(m2.uordblks);
  m.fordblks = ClampInt(m2.fordblks);
  m.keepcost = ClampInt(m2.keepcost);
  return m;
}
JS_EXPORT void malloc_stats(void) noexcept {
  PrintStats();
}
JS_EXPORT int malloc_info(int options, FILE* fp) noexcept {
  if (options != 0 || fp == nullptr) {
    errno = EINVAL;
    return -1;
  }
  js_stats_t s;
  CollectStats(&s);
  fprintf(fp,
          "<malloc version=\"jsmalloc-1\">\n"
          "<total type=\"committed\" size=\"%zu\"/>\n<total type=\"in_use\" size=\"%zu\"/>\n"
          "<total type=\"thread_cached\" size=\"%zu\"/>\n<total type=\"page_heap_free\" "
          "size=\"%zu\"/>\n"
          "<total type=\"released\" size=\"%zu\"/>\n<total type=\"mmap\" size=\"%zu\"/>\n"
          "<system type=\"reserved\" size=\"%zu\"/>\n</malloc>\n",
          s.committed, s.in_use, s.thread_cached, s.page_heap_free, s.released, s.huge, s.reserved);
  return 0;
}

// glibc's own names for the same calls: aliases, not copies. GCC also copies the
// target's attributes (nothrow, malloc, alloc_size) onto the alias; clang has no
// `copy` and takes the declaration's.
#if defined(__clang__)
#define JS_ALIAS(target) JS_EXPORT __attribute__((alias(#target)))
#else
#define JS_ALIAS(target) JS_EXPORT __attribute__((alias(#target), copy(target)))
#endif
JS_ALIAS(malloc) void* __libc_malloc(size_t size) noexcept;
JS_ALIAS(free) void __libc_free(void* p) noexcept;
JS_ALIAS(calloc) void* __libc_calloc(size_t count, size_t size) noexcept;
JS_ALIAS(realloc) void* __libc_realloc(void* p, size_t size) noexcept;
JS_ALIAS(memalign) void* __libc_memalign(size_t align, size_t size) noexcept;
JS_ALIAS(valloc) void* __libc_valloc(size_t size) noexcept;
JS_ALIAS(pvalloc) void* __libc_pvalloc(size_t size) noexcept;
JS_ALIAS(posix_memalign) int __posix_memalign(void** out, size_t align, size_t size) noexcept;
JS_ALIAS(free) void cfree(void* p) noexcept;

}  // extern "C"
