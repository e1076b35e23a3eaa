// The central free list of one size class owns that class's spans. It hands objects
// out of spans that have free ones (objects given back first, then never-used ones as
// one contiguous run, so a fresh span is handed out by bumping a pointer, not by
// threading a free list through it), takes objects back into their spans, and
// returns a span to the page heap as soon as all its objects are back.
#pragma once

#include <cstdint>

#include "backend/span.h"
#include "lock.h"

namespace jsmalloc {

class CentralFreeList {
 public:
  void Init(uint8_t cls);

  // Fills out[] with up to n objects given back earlier; when there are none, hands
  // out the never-used rest of a span as one run instead: *run_begin and the run's length
  // in *run_count. Returns the number placed in out[]. Both zero: out of memory.
  // `prefault`: the caller will write the whole run soon; a run of pages the process
  // never touched is then faulted in with one system call instead of a fault per page.
  int Remove(void** out, int n, uintptr_t* run_begin, int* run_count, bool prefault = false);
  // Takes n objects back into their spans.
  void Insert(void* const* objs, int n);
  // Takes back the first n objects of a chain linked through their link words (a thread
  // cache's list); *rest is what follows them. Returns how many it took: n, or fewer
  // if the chain ends first.
  uint32_t InsertList(void* head, uint32_t n, void** rest);

  struct Stats {
    size_t spans;
    size_t objects_out;  // handed to thread or transfer caches, or to the program
  };
  Stats GetStats();
  Mutex& lock() { return lock_; }

 private:
  // Spans emptied under our lock, handed to the page heap after it is released.
  struct EmptySpans {
    static constexpr int kMax = 64;
    Span* spans[kMax];
    int count = 0;
    void Flush();
  };

  Span* NewSpan();
  void TakeBackRun(Span* s, void* first, void* last, uint32_t count, EmptySpans& empty);

  Mutex lock_;
  SpanList nonempty_;  // spans with objects to give: given back, or never used
  uint8_t cls_ = 0;
  uint32_t size_ = 0;
  size_t spans_ = 0;
  size_t objects_out_ = 0;
};

}  // namespace jsmalloc
