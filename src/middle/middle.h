// The middle-end as the front-end sees it: take objects of a class, give them back.
// Behind it, per class, a transfer cache in front of a central free list.
#pragma once

#include <cstddef>
#include <cstdint>

#include "backend/heap_region.h"
#include "free_list.h"
#include "middle/central_free_list.h"
#include "middle/transfer_cache.h"
#include "size_class.h"

namespace jsmalloc {

extern constinit TransferCache g_transfer[kNumClasses];
extern constinit CentralFreeList g_central[kNumClasses];

void MiddleInit();

// Up to n objects of class cls into out (returns how many), or, when none were given
// back (or the fetch is kOwnRun), a run of never-used objects in [*run_begin,
// + *run_count objects), or a span's whole free list (see CentralFreeList::Remove).
inline int MiddleRemove(size_t cls, void** out, int n, uintptr_t* run_begin, int* run_count,
                        const FetchOptions& how = {}) {
  if (how.fetch != Fetch::kOwnRun) {
    int got = g_transfer[cls].Remove(out, n);
    if (got > 0) {
      *run_count = 0;
      if (how.chain != nullptr) *how.chain = nullptr;
      return got;
    }
  }
  return g_central[cls].Remove(out, n, run_begin, run_count, how);
}

// The unused tail of a run from MiddleRemove.
inline void MiddleReturnRun(size_t cls, uintptr_t begin, uint32_t count) {
  g_central[cls].ReturnRun(begin, count);
}

// The thread cache `carver` used up the run that ends at run_end. Its span must be
// alive: call it while the run's last object is still out.
inline void MiddleRunDone(uintptr_t run_end, uint32_t carver) {
  Span* s = HeapRegion::SpanOf(reinterpret_cast<void*>(run_end - 1));
  // No compare-and-swap: while the run's last object is out, only its carver writes the
  // field (a run is carved only where it is 0; it is reset only by ReturnRun, called by
  // the carver, and when every object is back).
  if (__atomic_load_n(&s->carver, __ATOMIC_RELAXED) == carver)
    __atomic_store_n(&s->carver, 0, __ATOMIC_RELAXED);
}

// The serial of the thread cache bumping through a run of small object p's span, 0 if
// none.
inline uint32_t MiddleCarverOf(const void* p) {
  return __atomic_load_n(&HeapRegion::SpanOf(p)->carver, __ATOMIC_RELAXED);
}

// Objects given back. The transfer cache exists to hand batches between threads; while
// the process has one thread that allocates, it would only hold memory (and pin the
// spans it came from), so the front-end says whether to use it.
inline void MiddleInsert(size_t cls, void* const* objs, int n, bool share = true) {
  if (!share || !g_transfer[cls].Insert(objs, n)) g_central[cls].Insert(objs, n);
}

// The first n objects of a chain linked through their link words (a thread cache's
// list) given back; *rest is what follows them. Returns how many were taken (n, or
// fewer if the chain ends first).
inline uint32_t MiddleInsertList(size_t cls, void* head, uint32_t n, void** rest,
                                 bool share = true) {
  if (!share) return g_central[cls].InsertList(head, n, rest);
  uint32_t taken = 0;
  void* objs[kMaxBatch];
  while (taken < n && head != nullptr) {
    int k = 0;
    for (; k < static_cast<int>(kMaxBatch) && taken < n && head != nullptr; ++k, ++taken) {
      objs[k] = head;
      void* next = ListNext(head);
      if (next != nullptr) CheckListLink(head, next, cls);  // the secure library's check
      head = next;
    }
    MiddleInsert(cls, objs, k);
  }
  *rest = head;
  return taken;
}

// Everything the transfer caches hold goes back to the central free lists (so empty
// spans can go back to the page heap).
void MiddleDrainTransferCaches();
// The same for one class.
void MiddleDrainTransferCache(size_t cls);

}  // namespace jsmalloc
