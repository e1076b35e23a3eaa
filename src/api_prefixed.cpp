// The prefixed API (include/jsmalloc.h). Present in every build, beside or instead of
// the system malloc.
#include <errno.h>

#include "allocator.h"
#include "jsmalloc.h"
#include "profiler.h"
#include "stats.h"

using namespace jsmalloc;

extern "C" {

JS_FAST_ENTRY JS_EXPORT void* js_malloc(size_t size) {
  return Malloc(size);
}
JS_FAST_ENTRY JS_EXPORT void js_free(void* p) {
  Free(p);
}
JS_EXPORT void* js_calloc(size_t count, size_t size) {
  return Calloc(count, size);
}
JS_EXPORT void* js_realloc(void* p, size_t size) {
  return Realloc(p, size);
}
JS_EXPORT void js_free_sized(void* p, size_t size) {
  FreeSized(p, size);
}
JS_EXPORT void js_free_aligned_sized(void* p, size_t align, size_t size) {
  FreeSized(p, size, align);
}
JS_EXPORT size_t js_usable_size(const void* p) {
  return UsableSize(p);
}
JS_EXPORT size_t js_release_free_memory(void) {
  return ReleaseFreeMemory();
}
JS_EXPORT void js_get_stats(js_stats_t* stats) {
  CollectStats(stats);
}
JS_EXPORT size_t js_stats_print(char* buf, size_t size, int json) {
  return FormatStats(buf, size, json != 0);
}

JS_EXPORT int js_profile_dump(const char* path) {
  if (path == nullptr) {
    errno = EINVAL;
    return -1;
  }
  return ProfilerDump(path, ProfileKind::kLive);
}
JS_EXPORT int js_profile_dump_peak(const char* path) {
  if (path == nullptr) {
    errno = EINVAL;
    return -1;
  }
  return ProfilerDump(path, ProfileKind::kPeak);
}
JS_EXPORT void js_profile_reset_peak(void) {
  ProfilerResetPeak();
}

JS_EXPORT void* js_aligned_alloc(size_t align, size_t size) {
  if (!IsPowerOfTwo(align)) {
    errno = EINVAL;
    return nullptr;
  }
  return AlignedAlloc(align, size);
}

}  // extern "C"
