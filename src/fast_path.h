// The whole malloc and free fast paths. Everything they do not handle is an
// out-of-line call into slow_path.cpp or the front-end's slow paths.
//
// malloc(n):              count n down from the thread's countdown (running out, or n
//                         above kMaxFastSize, takes the slow path); class = table[n];
//                         pop the thread cache's list, prefetching the new head;
//                         clear the free marker.
// free(p):                offset = p - heap base (one compare says "ours"); class =
//                         pagemap byte; one multiply checks p starts an object of that
//                         class (rejecting interior pointers and non-small pages); the
//                         free marker catches double frees; push on the list.
#pragma once

#include <cstddef>
#include <cstdint>

#include "backend/heap_region.h"
#include "common.h"
#include "free_list.h"
#include "frontend/thread_cache.h"
#include "secure.h"
#include "size_class.h"

namespace jsmalloc {

void* MallocSlow(size_t size);  // the countdown ran out (or size > kMaxFastSize)
void FreeSlow(void* p);         // not a small object in the heap
// Never returns. Not declared [[noreturn]], so that free jumps to it: a call to a
// noreturn function costs clang a stack-aligning push and pop on every free.
JS_SLOW_PATH void ReportDoubleFree(void* p);

// Takes one from budget and says whether it went below 0, in one instruction on memory
// (subl $1, mem; js). In asm because the empty cache's budgets are shared by every
// thread that has no cache: they may race here, and that is harmless (a budget there
// is only ever 0 or below, and the slow path puts it back to 0), but not something to
// write in C++. ThreadCacheOverflow gives the unit back.
JS_FAST_PATH bool TakeBudget(int32_t& budget) {
  bool overdrawn;
  __asm__("subl $1, %0" : "+m"(budget), "=@ccs"(overdrawn));
  return overdrawn;
}

// Takes size from the countdown and says whether it ran out, in one subtract on memory
// whose borrow is the answer (subq reg, mem; jb): compilers load, subtract and store.
JS_FAST_PATH bool TakeFromCountdown(uint64_t& countdown, size_t size) {
  bool ran_out;
  __asm__("subq %2, %0" : "+m"(countdown), "=@ccc"(ran_out) : "r"(size));
  return ran_out;
}

// Counts an allocation that does not pass through Malloc (aligned, or a large calloc)
// toward the sampler, as Malloc does. Returns whether it is sampled.
JS_FAST_PATH bool CountAllocation(size_t size) {
  return TakeFromCountdown(tl_thread.countdown, size) && ThreadCacheCountdownRanOut();
}

JS_FAST_PATH void* PopOrRefill(size_t cls, size_t size) {
  ThreadCache* tc = tl_thread.cache;
  void* p = tc->head[cls];
  __asm__("" : "+a"(p));  // where it is returned: GCC would load it elsewhere and copy
  if (JS_UNLIKELY(p == nullptr)) return tc->refill(size, cls);
  JS_ASSERT(static_cast<uintptr_t*>(p)[1] == FreeMarker(p));
  void* next = ListNext(p);
  // The next pop's link load is the one that misses on a list of blocks freed long ago
  // (bench-frag: 18.8 % of its time). Asked for now, it arrives while the program uses
  // p (frag 0.94x the time), at one instruction. Prefetching a null head is harmless.
  __builtin_prefetch(next);
  tc->head[cls] = next;
  tc->budget[cls] += 1;
  return HandOut(p);
}

// Every size: one above kMaxFastSize is above the countdown too.
JS_FAST_PATH void* Malloc(size_t size) {
  if constexpr (kSecure) return SecureMalloc(size);  // secure.cpp (discarded by default)
  if (JS_UNLIKELY(TakeFromCountdown(tl_thread.countdown, size))) return MallocSlow(size);
  return PopOrRefill(SizeToClassFast(size), size);
}

JS_FAST_PATH void Free(void* p) {
  if constexpr (kSecure) return SecureFree(p);
  uintptr_t offset = reinterpret_cast<uintptr_t>(p) - g_pagemap.base;
  if (JS_UNLIKELY(offset >= g_pagemap.size)) return FreeSlow(p);  // NULL, huge, foreign
  const uint8_t* classes = g_pagemap.classes;
  size_t cls = classes[offset >> kPageShift];
  if (JS_UNLIKELY(!StartsObject(classes, cls, offset))) return FreeSlow(p);  // large, bad
  uintptr_t* obj = static_cast<uintptr_t*>(p);
  uintptr_t marker = FreeMarker(p);
  if (JS_UNLIKELY(obj[1] == marker)) return ReportDoubleFree(p);
  ThreadCache* tc = tl_thread.cache;
  if (JS_UNLIKELY(TakeBudget(tc->budget[cls]))) return tc->overflow(p, tc, cls, marker);
  SetListNext(obj, tc->head[cls]);
  CompilerBarrier();  // two plain stores, not an SSE pack of them
  obj[1] = marker;
  tc->head[cls] = p;
}

}  // namespace jsmalloc
