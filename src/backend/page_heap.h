// The page heap: every page of the heap region that is not part of a small span or a
// large allocation is in one of its free spans. Allocate splits a free span (keeping an
// alignment), Deallocate coalesces with free neighbours through the pagemap's boundary
// tags. Free spans go back to the OS after they have been free for the decay time.
#pragma once

#include <cstddef>
#include <cstdint>

#include "backend/heap_region.h"
#include "backend/span.h"
#include "bit_set.h"
#include "lock.h"

namespace jsmalloc {

class PageHeap {
 public:
  // A span of `npages` whose first page index is a multiple of `align_pages`, mapped in
  // the pagemap with `cls` (a size class, or kPageLarge). nullptr when out of memory.
  // span->committed tells whether its pages may hold old data (false: all zero).
  Span* Allocate(size_t npages, size_t align_pages, uint8_t cls);
  void Deallocate(Span* span);

  // Tries to grow an allocated large span in place to `npages` by taking the free span
  // after it. Returns false (and changes nothing) when it cannot.
  bool TryExtend(Span* span, size_t npages);
  // Shrinks an allocated large span in place, freeing its tail.
  void Shrink(Span* span, size_t npages);

  // Gives every free page back to the OS now. Returns the bytes released.
  size_t ReleaseAll();

  struct Stats {
    size_t free_committed_bytes;
    size_t free_released_bytes;
    size_t small_bytes;
    size_t large_bytes;
    size_t spans_allocated;
    size_t free_spans;
  };
  Stats GetStats();

  Mutex& lock() { return lock_; }
  // Bytes in spans handed out (small and large), without the lock: a moment's value.
  size_t InUseBytes() const {
    return (__atomic_load_n(&small_pages_, __ATOMIC_RELAXED) +
            __atomic_load_n(&large_pages_, __ATOMIC_RELAXED))
           << kPageShift;
  }
  void set_decay_ns(uint64_t ns) { __atomic_store_n(&decay_ns_, ns, __ATOMIC_RELAXED); }
  // The decay clock, for memory kept out of the page heap that should age alike.
  uint64_t decay_ns() const { return __atomic_load_n(&decay_ns_, __ATOMIC_RELAXED); }
  static uint64_t Now();
  // Free pages idle for the decay time go back to the OS, if a look is due (every
  // quarter of the decay time): one relaxed load when it is not, so that callers off
  // the page heap's own paths may ask often.
  void ReleaseOldIfDue(uint64_t now);

 private:
  static constexpr size_t kMaxBin = 128;  // exact free lists for 1..128 pages

  void Insert(Span* s);
  void Unlink(Span* s);
  Span* FindFit(size_t npages, size_t align_pages);
  Span* Carve(Span* s, size_t npages, size_t align_pages);
  Span* Coalesce(Span* s);
  bool GrowHeap(size_t npages);
  void MaybeReleaseOld(uint64_t now);  // with lock_ held
  void Release(Span* s);
  void AccountFree(Span* s, long sign);
  void CountInUse(bool large, long npages);  // with lock_ held

  Mutex lock_;
  SpanList bins_[kMaxBin + 1];    // bins_[0]: spans larger than kMaxBin pages
  BitSet<kMaxBin + 1> nonempty_;  // bins with spans
  uint64_t decay_ns_ = 1000000000;
  uint64_t next_release_check_ns_ = 0;
  size_t free_committed_pages_ = 0;
  size_t free_released_pages_ = 0;
  size_t small_pages_ = 0;  // both written under lock_ (CountInUse), read without it
  size_t large_pages_ = 0;  // by InUseBytes
  size_t spans_allocated_ = 0;
  size_t free_spans_ = 0;
};

extern constinit PageHeap g_page_heap;

}  // namespace jsmalloc
