/* jsmalloc — a general-purpose memory allocator for Linux x86-64.
 *
 * This header is the prefixed API. It works in every build of jsmalloc:
 *  - libjsmalloc.so / libjsmalloc.a also replace malloc/free/new/delete;
 *  - libjsmalloc-prefixed.a offers only these js_* calls, beside the system malloc.
 *
 * Every js_* call follows the C standard's contract for its unprefixed twin
 * (errno = ENOMEM on failure, EINVAL for bad alignments) unless said otherwise.
 */
#ifndef JSMALLOC_H_
#define JSMALLOC_H_

#include <stddef.h>

#define JSMALLOC_VERSION_MAJOR 0
#define JSMALLOC_VERSION_MINOR 1
#define JSMALLOC_VERSION_PATCH 0

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define JS_API __attribute__((visibility("default")))
#define JS_MALLOC_ATTR __attribute__((malloc, warn_unused_result))
#define JS_ALLOC_SIZE(...) __attribute__((alloc_size(__VA_ARGS__)))
#else
#define JS_API
#define JS_MALLOC_ATTR
#define JS_ALLOC_SIZE(...)
#endif

JS_API JS_MALLOC_ATTR JS_ALLOC_SIZE(1) void* js_malloc(size_t size);
JS_API JS_MALLOC_ATTR JS_ALLOC_SIZE(1, 2) void* js_calloc(size_t count, size_t size);
JS_API JS_ALLOC_SIZE(2) void* js_realloc(void* ptr, size_t size);
JS_API JS_MALLOC_ATTR JS_ALLOC_SIZE(2) void* js_aligned_alloc(size_t alignment, size_t size);
JS_API void js_free(void* ptr);

/* Frees ptr, which was allocated with `size` bytes (as C23 free_sized). A size that
 * does not match the allocation is reported and aborts when
 * JSMALLOC_CHECK_SIZED_FREE=1 in debug and secure builds (README, "Options");
 * otherwise the size is a hint. */
JS_API void js_free_sized(void* ptr, size_t size);

/* Frees ptr, which js_aligned_alloc returned for `alignment` and `size` (as C23
 * free_aligned_sized). Checked like js_free_sized; an alignment ptr does not have (or
 * one that is not a power of two) is reported as well. */
JS_API void js_free_aligned_sized(void* ptr, size_t alignment, size_t size);

/* Bytes usable at ptr: at least what was asked for. 0 for NULL. */
JS_API size_t js_usable_size(const void* ptr);

/* Returns every free page the allocator holds to the OS now (the calling thread's
 * cache included). Returns the number of bytes released. */
JS_API size_t js_release_free_memory(void);

/* Statistics, as a snapshot. All byte counts. */
typedef struct js_stats_s {
  size_t reserved;        /* address space reserved from the OS */
  size_t committed;       /* pages that may be resident (touched and not released) */
  size_t in_use;          /* bytes in blocks handed to the program (by size class) */
  size_t thread_cached;   /* bytes in front-end caches: per thread, or per CPU */
  size_t transfer_cached; /* bytes in transfer caches */
  size_t central_free;    /* bytes free in spans of central free lists (empty ones too) */
  size_t page_heap_free;  /* bytes in free spans of the page heap, still committed */
  size_t released;        /* bytes in free spans given back to the OS */
  size_t huge;            /* bytes in huge allocations (own mappings) */
  size_t metadata;        /* bytes used by the allocator's own bookkeeping */
  size_t spans_allocated; /* spans ever taken from the page heap */
  size_t hugepage_backed; /* bytes of the heap in hugepages the kernel most likely backs
                             as transparent hugepages (the heap's own accounting) */
  size_t pending_release; /* free bytes still resident that the decay will give back:
                             free pages of the page heap and spans the classes retain */
  size_t released_total;  /* bytes given back to the OS over the run */
  size_t refaulted_total; /* of those, bytes handed out again (faulted back in on use) */
} js_stats_t;

JS_API void js_get_stats(js_stats_t* stats);

/* Writes statistics as text (json = 0) or JSON (json = 1) into buf, NUL-terminated.
 * Returns the length the full text needs (like snprintf). */
JS_API size_t js_stats_print(char* buf, size_t size, int json);

/* Heap profiler (README, "Profiling"; on when JSMALLOC_PROFILE, JSMALLOC_PROFILE_SAMPLE,
 * JSMALLOC_PROFILE_SIGNAL or JSMALLOC_LEAKS is set). Writes the sampled live heap, with
 * the cumulative allocations, to path: pprof's protocol buffer (gzip'd) if path ends in
 * ".pb.gz" or ".pb", else the gperftools heap-profile text. Returns 0, or -1 with errno
 * set (that of open or write). With the profiler off the profile is empty. */
JS_API int js_profile_dump(const char* path);
/* The same for the heap at its peak (since start or js_profile_reset_peak). */
JS_API int js_profile_dump_peak(const char* path);
JS_API void js_profile_reset_peak(void);

#ifdef __cplusplus
}
#endif

#endif /* JSMALLOC_H_ */
