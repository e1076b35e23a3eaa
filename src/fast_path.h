// The whole malloc and free fast paths. Everything they do not handle is an
// out-of-line call into slow_path.cpp or the front-end's slow paths.
//
// malloc(n):              count n down from the thread's countdown (running out, or n
//                         above kMaxFastSize, takes the slow path); tag = table[n];
//                         pop the thread cache's list, prefetching the new head;
//                         clear the free marker.
// free(p):                offset = p - heap base (one compare says "ours"); tag =
//                         pagemap entry; one multiply checks p starts an object of that
//                         class (rejecting interior pointers and non-small pages); the
//                         free marker catches double frees; push on the list.
//
// Both reach list `tag` of the cache through one address, the cache's plus the tag
// (ListSlot), with no scaled index: see ListSlot for why.
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
// (subq $1, mem; js). In asm because the empty cache's budgets are shared by every
// thread that has no cache: they may race here, and that is harmless (a budget there
// is only ever 0 or below, and the slow path puts it back to 0), but not something to
// write in C++. ThreadCacheOverflow gives the unit back.
JS_FAST_PATH bool TakeBudget(int64_t& budget) {
  bool overdrawn;
  __asm__("subq $1, %0" : "+m"(budget), "=@ccs"(overdrawn));
  return overdrawn;
}

// Where list `tag` of the calling thread's cache keeps its head and budget: the cache's
// address plus the tag (SlotHead, SlotBudget add fixed displacements). Hidden from the
// compiler (the empty asm), so that it adds the tag to the cache pointer as it loads
// it (one `add %fs:...`, as many instructions as the load alone) and addresses the
// head and budget by base and displacement, not by base and scaled index. A pop waits
// on the push before it (free's store of the head, of the link) and the push on the
// pop: with the indexed addresses the compiler chose by itself, this machine's core
// (a Xeon with AVX-512) took 12.0 rdtsc ticks a malloc+free pair in bench-latency's
// tight loop, with these 8.5 (tcmalloc 9.8), at the same instruction count
// (docs/design.md, "Addressing"). The miss paths find the cache again from the slot
// (CacheOfSlot) rather than keep it in a register.
static_assert(sizeof(ClassList) == ClassTagOf(1) && offsetof(ThreadCache, lists) == 0,
              "a tag is the byte offset of a class's list in its cache");
JS_FAST_PATH char* ListSlot(size_t tag) {
  char* slot = reinterpret_cast<char*>(tl_thread.cache) + tag;
  __asm__("" : "+r"(slot));
  return slot;
}
JS_FAST_PATH void*& SlotHead(char* slot) {
  return *reinterpret_cast<void**>(slot + offsetof(ClassList, head));
}
JS_FAST_PATH int64_t& SlotBudget(char* slot) {
  return *reinterpret_cast<int64_t*>(slot + offsetof(ClassList, budget));
}
// Where free's fast path read p's tag, found again from p alone on its miss path (atomic
// loads: the compiler would otherwise keep the first computation's registers).
JS_FAST_PATH const ClassTag* PageTagAt(const void* p) {
  const uintptr_t base = __atomic_load_n(&g_pagemap.base, __ATOMIC_RELAXED);
  const ClassTag* tags = __atomic_load_n(&g_pagemap.tags, __ATOMIC_RELAXED);
  return &tags[(reinterpret_cast<uintptr_t>(p) - base) >> kPageShift];
}
// The cache whose list `tag` is at `slot`, on a miss path. The tag is read again from
// where the hit path read it (*tag_at), so that the hit path need not keep it: an
// atomic load, which the compiler does not merge with the first (keeping that one costs
// the hit path a register copy). Not tl_thread.cache loaded again: a signal handler's
// malloc may have given the thread a cache since ListSlot read it.
JS_FAST_PATH ThreadCache* CacheOfSlot(char* slot, const ClassTag* tag_at, size_t* cls) {
  const size_t tag = __atomic_load_n(tag_at, __ATOMIC_RELAXED);
  *cls = ClassOfTag(tag);
  return reinterpret_cast<ThreadCache*>(slot - tag);
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

// Pops from list *tag_at (ClassTagOf(class)), or refills it.
JS_FAST_PATH void* PopOrRefill(const ClassTag* tag_at, size_t size) {
  char* slot = ListSlot(*tag_at);
  void* p = SlotHead(slot);
  __asm__("" : "+a"(p));  // where it is returned: GCC would load it elsewhere and copy
  if (JS_UNLIKELY(p == nullptr)) {
    size_t cls;
    ThreadCache* tc = CacheOfSlot(slot, tag_at, &cls);
    return tc->refill(size, cls);
  }
  JS_ASSERT(static_cast<uintptr_t*>(p)[1] == FreeMarker(p));
  void* next = ListNext(p);
  // The next pop's link load is the one that misses on a list of blocks freed long ago
  // (bench-frag: 18.8 % of its time). Asked for now, it arrives while the program uses
  // p (frag 0.94x the time), at one instruction. Prefetching a null head is harmless.
  __builtin_prefetch(next);
  SlotHead(slot) = next;
  SlotBudget(slot) += 1;
  return HandOut(p);
}

// PopOrRefill for a caller that has the class, not where its tag is (the slow paths).
JS_FAST_PATH void* PopOrRefillClass(size_t cls, size_t size) {
  return PopOrRefill(&kClassTags[cls], size);
}

// Every size: one above kMaxFastSize is above the countdown too.
JS_FAST_PATH void* Malloc(size_t size) {
  if constexpr (kSecure) return SecureMalloc(size);  // secure.cpp (discarded by default)
  if (JS_UNLIKELY(TakeFromCountdown(tl_thread.countdown, size))) return MallocSlow(size);
  return PopOrRefill(SizeToTagAt(size), size);
}

JS_FAST_PATH void Free(void* p) {
  if constexpr (kSecure) return SecureFree(p);
  uintptr_t offset = reinterpret_cast<uintptr_t>(p) - g_pagemap.base;
  if (JS_UNLIKELY(offset >= g_pagemap.size)) return FreeSlow(p);  // NULL, huge, foreign
  const ClassTag* tags = g_pagemap.tags;
  size_t tag = tags[offset >> kPageShift];
  if (JS_UNLIKELY(!StartsObject(tags, tag, offset))) return FreeSlow(p);  // large, bad
  uintptr_t* obj = static_cast<uintptr_t*>(p);
  uintptr_t marker = FreeMarker(p);
  if (JS_UNLIKELY(obj[1] == marker)) return ReportDoubleFree(p);
  char* slot = ListSlot(tag);
  if (JS_UNLIKELY(TakeBudget(SlotBudget(slot)))) {
    size_t cls;
    ThreadCache* tc = CacheOfSlot(slot, PageTagAt(p), &cls);
    return tc->overflow(p, tc, cls, marker);
  }
  SetListNext(obj, SlotHead(slot));
  CompilerBarrier();  // two plain stores, not an SSE pack of them
  obj[1] = marker;
  SlotHead(slot) = p;
}

}  // namespace jsmalloc
