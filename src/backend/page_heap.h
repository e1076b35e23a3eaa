// The page heap: every page of the heap region that is not part of a small span or a
// large allocation is in one of its free spans. Allocate splits a free span (keeping an
// alignment), Deallocate coalesces with free neighbours through the pagemap's boundary
// tags. It is hugepage-aware through its filler (hugepage_filler.h): small spans go to
// the fullest hugepage that fits them, spans of a hugepage or more start on a hugepage,
// and free pages go back to the OS by the age of their hugepage, whole hugepages first.
#pragma once

#include <cstddef>
#include <cstdint>

#include "backend/heap_region.h"
#include "backend/hugepage_filler.h"
#include "backend/span.h"
#include "bit_set.h"
#include "lock.h"

namespace jsmalloc {

class PageHeap {
 public:
  // A span of `npages` whose first page index is a multiple of `align_pages`, mapped in
  // the pagemap with `cls` (a size class, or kPageLarge). nullptr when out of memory.
  // span->committed tells whether its pages may hold old data (false: all zero).
  // last_closed (the secure library's guarded blocks): set true when the span's last page
  // was left inaccessible, as the block's guard; otherwise every page is open.
  Span* Allocate(size_t npages, size_t align_pages, uint8_t cls, bool* last_closed = nullptr);
  void Deallocate(Span* span);

  // Tries to grow an allocated large span in place to `npages` by taking the free span
  // after it. Returns false (and changes nothing) when it cannot. *maybe_dirty (if
  // given) tells whether the pages taken may hold old data (false: all zero).
  bool TryExtend(Span* span, size_t npages, bool* maybe_dirty = nullptr);
  // Shrinks an allocated large span in place, freeing its tail.
  void Shrink(Span* span, size_t npages);

  // Gives every free page back to the OS now. Returns the bytes released.
  size_t ReleaseAll();
  // Copies up to `max` of the dense hugepages the filler names onto hugepages
  // (HugePageFiller::CollapseCandidates), without the lock during each copy: a collapse
  // takes about 2 ms, and the program's threads keep allocating meanwhile. Returns how
  // many were collapsed. For the background thread only: the copy is made in the caller.
  size_t CollapseDense(size_t max);

  struct Stats {
    size_t free_committed_bytes;  // free pages that may hold data: pending release
    size_t free_released_bytes;   // free pages that read as zero
    size_t small_bytes;
    size_t large_bytes;
    size_t spans_allocated;
    size_t free_spans;
    size_t hugepage_bytes;        // in hugepages the kernel most likely backs as such
    size_t released_total_bytes;  // given back to the OS, over the run
    size_t refaulted_bytes;       // of those, handed out again (faulted back in on use)
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
  // What the filler knows of this heap's hugepages, for statistics and tests.
  const HugePageFiller& filler() const { return filler_; }

 private:
  static constexpr size_t kMaxBin = 128;  // exact free lists for 1..128 pages

  // Allocate and TryExtend under the lock; *closed: some pages taken may be closed
  // (the secure library's freed large blocks), for the caller to open without the lock.
  Span* AllocateLocked(size_t npages, size_t align_pages, uint8_t cls, Span::Closed* closed);
  bool TryExtendLocked(Span* span, size_t npages, bool* maybe_dirty, Span::Closed* closed);
  // Shrink, with the record for the freed tail already taken.
  void ShrinkInto(Span* span, size_t npages, Span* tail);
  // Deallocate's work under the lock; `closed`: the span's pages may be closed.
  void TakeBack(Span* s, Span::Closed closed);
  void Insert(Span* s);
  void Unlink(Span* s);
  // A free span and the page in it where a new span starts.
  struct Fit {
    Span* span;
    uintptr_t start;
  };
  uintptr_t Place(const Span* s, size_t npages, size_t align_pages, uint8_t family) const;
  Fit FindFit(size_t npages, size_t align_pages, uint8_t family);
  Fit FitAtHint(size_t npages, size_t align_pages, uint8_t family);
  Fit FindFitOrGrow(size_t npages, size_t align_pages, uint8_t family);
  Span* Carve(Span* s, size_t npages, uintptr_t start);
  Span* Coalesce(Span* s);
  bool GrowHeap(size_t npages);
  void MaybeReleaseOld(uint64_t now);  // with lock_ held
  void AccountFree(Span* s, long sign);
  void CountInUse(bool large, long npages);  // with lock_ held

  Mutex lock_;
  SpanList bins_[kMaxBin + 1];    // bins_[0]: spans larger than kMaxBin pages
  BitSet<kMaxBin + 1> nonempty_;  // bins with spans
  uint64_t decay_ns_ = 1000000000;
  uint64_t next_release_check_ns_ = 0;
  HugePageFiller filler_;
  // Per family of small spans (their alignment, 1..16): the page after the last span
  // the family took, where its next one fits with no gap if that page is still free.
  static constexpr size_t kFillHints = 17;
  uintptr_t fill_hint_[kFillHints] = {};
  size_t free_pages_ = 0;
  size_t small_pages_ = 0;  // both written under lock_ (CountInUse), read without it
  size_t large_pages_ = 0;  // by InUseBytes
  size_t spans_allocated_ = 0;
  size_t free_spans_ = 0;
};

extern constinit PageHeap g_page_heap;

}  // namespace jsmalloc
