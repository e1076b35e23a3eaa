// The central free list of one size class owns that class's spans. It hands objects
// out of spans that have free ones (objects given back first, then never-used ones as
// one contiguous run, so a fresh span is handed out by bumping a pointer, not by
// threading a free list through it) and takes objects back into their spans. A span
// whose objects are all back is kept (retained) as if never used, for the class's next
// run: a program that frees and then allocates the same sizes again gets the lines
// and pages it used last, and skips the page heap's split and coalesce. Retained spans
// go back to the page heap as soon as it has to hand out a span (see span_source.h),
// when idle for the decay time, or on request.
#pragma once

#include <cstdint>

#include "backend/heap_region.h"
#include "backend/span.h"
#include "lock.h"
#include "report.h"
#include "secure.h"

namespace jsmalloc {

// What a thread cache asks the middle tier for.
enum class Fetch : uint8_t {
  kReuse,      // objects given back first; else a run, faulted in page by page as used
  kReuseBulk,  // the same, but a run is faulted in at once (the caller will write it all)
  kOwnRun,     // a run only, never objects given back: a thread's first objects of a
               // class, so they share no cache line with objects another thread uses
};

// How a fetch is served, beyond up to n objects into out[].
struct FetchOptions {
  Fetch fetch = Fetch::kReuse;
  uint32_t carver = 0;              // recorded on a run's span while the run is out
  size_t max_run_bytes = SIZE_MAX;  // a run is at most this long (one object at least)
  // When set: a span's whole free list, as it is (linked through the link words), in
  // *chain instead of objects in out[], if it holds at most max_chain objects; else
  // *chain is nullptr.
  void** chain = nullptr;
  uint32_t max_chain = 0;
};

// Secure builds: `next` (not nullptr), a link followed from free object `from` (for a
// chain's head, the head itself), must be a free object of class cls (in the heap, on a
// page of the class, at an object's start), or a pop or a walk would take a corrupted
// link for one: reported, naming `from`. Every link the thread caches and the middle
// tier follow is checked here. Compiles to nothing in the default build.
JS_FAST_PATH void CheckListLink(const void* from, const void* next, size_t cls) {
  if constexpr (kSecure) {
    if (!IsObjectOfClass(next, cls)) ReportBadPointer("corrupted free list", from);
  }
}

class CentralFreeList {
 public:
  void Init(uint8_t cls);

  // Fills out[] with up to n objects given back earlier; when there are none (or
  // the fetch is kOwnRun), hands out never-used objects of a span as one run instead
  // (its uncarved rest, but at most max_run_bytes of it): *run_begin and the run's
  // length in *run_count. Returns the number placed in out[] (or in the chain). Both
  // zero: out of memory. kReuseBulk: the caller will write the whole run soon; a run of
  // pages the process never touched is then faulted in with one system call instead of
  // a fault per page. A run's span records `carver` (the taking thread cache's serial)
  // until the run is given back or done with; no other run comes from the span
  // meanwhile. A chain is the first span's free list taken whole: no object is touched
  // here.
  int Remove(void** out, int n, uintptr_t* run_begin, int* run_count, const FetchOptions& how = {});
  // The unused tail [begin, + count objects) of a run goes back to its span's
  // never-used part, without touching its memory.
  void ReturnRun(uintptr_t begin, uint32_t count);
  // Takes n objects back into their spans.
  void Insert(void* const* objs, int n);
  // Takes back the first n objects of a chain linked through their link words (a thread
  // cache's list); *rest is what follows them. Returns how many it took: n, or fewer
  // if the chain ends first.
  uint32_t InsertList(void* head, uint32_t n, void** rest);

  // Retained spans go back to the page heap: all of them, or those retained before
  // time before_ns (PageHeap::Now). Returns how many. Takes the page heap's lock
  // without ours held.
  size_t ReleaseRetained(uint64_t before_ns = UINT64_MAX);
  size_t retained() { return __atomic_load_n(&retained_count_, __ATOMIC_RELAXED); }

  struct Stats {
    size_t spans;        // retained ones included
    size_t objects_out;  // handed to thread or transfer caches, or to the program
  };
  Stats GetStats();
  Mutex& lock() { return lock_; }

 private:
  Span* NewSpan();
  int TakeWholeSpans(void** out, int n);
  int RemoveWholeSpans(void** out, int n);
  Span* CarveRun(uintptr_t* run_begin, int* run_count, int max_spans, size_t max_run,
                 uint32_t carver);
  void LeaveIfDry(Span* s);
  void JoinNonempty(Span* s);
  void AddRetained(long delta);
  void Retain(Span* s, uint64_t* now);
  void CountBack(Span* s, uint32_t count, uint64_t* now);
  void TakeBackRun(Span* s, void* first, void* last, uint32_t count, uint64_t* now);

  Mutex lock_;
  SpanList nonempty_;  // spans with objects to give: given back, or never used
  SpanList retained_;  // spans with every object back, reset to never used; newest first
  size_t retained_count_ = 0;
  uint8_t cls_ = 0;
  bool one_per_span_ = false;  // OnePerSpan: spans come and go whole (TakeWholeSpans)
  uint32_t size_ = 0;
  size_t spans_ = 0;
  size_t objects_out_ = 0;
};

}  // namespace jsmalloc
