#include "backend/page_heap.h"

#include "backend/meta_arena.h"
#include "os/sys.h"
#include "os/thp.h"
#include "os/vm.h"
#include "size_class.h"

namespace jsmalloc {

constinit PageHeap g_page_heap;
constinit RecordPool<Span> g_span_pool;

namespace {
size_t BinOf(size_t npages) {
  return npages <= 128 ? npages : 0;
}

// The secure library keeps the pages of freed large blocks inaccessible (PROT_NONE) while
// the page heap holds them: a read or write through a pointer to a freed large block
// faults at once, instead of reading its old data or landing in a block handed out
// later. They open again as they are handed out (a free span with such pages is
// `closed`). Small spans are not closed: their objects were zeroed at free and are
// checked when handed out again, and a span for every 64 KiB of small objects would pay
// two more mprotect calls. Where the kernel refuses (its limit on mappings), a freed
// block stays as it was, readable until reused; an allocation that cannot open its
// pages fails with ENOMEM.
#if defined(JSMALLOC_SECURE)
constexpr bool kProtectFreePages = true;
#else
constexpr bool kProtectFreePages = false;
#endif

using Closed = Span::Closed;

// Opens pages [first, + npages) of a span being handed out that may hold closed ones.
bool OpenPages(uintptr_t first, size_t npages) {
  return os::Protect(HeapRegion::AddressOf(first), npages << kPageShift, true);
}

// Closes pages [first, + npages) of a large block being freed; says what they are now.
// Called without the page heap's lock: the pages are still the caller's, and the lock
// need not wait on the kernel's work. A refusal leaves them as they were, the block's
// guard page closed among them: kSome.
Closed ClosePages(uintptr_t first, size_t npages) {
  if (!kProtectFreePages) return Closed::kNone;
  return os::Protect(HeapRegion::AddressOf(first), npages << kPageShift, false) ? Closed::kAll
                                                                                : Closed::kSome;
}

// The pages of two free spans merged into one.
Closed MergeClosed(Closed a, Closed b) {
  return a == b ? a : Closed::kSome;
}
}  // namespace

void PageHeap::AccountFree(Span* s, long sign) {
  free_pages_ += static_cast<size_t>(sign) * s->npages;
  free_spans_ += static_cast<size_t>(sign);
}

void PageHeap::Insert(Span* s) {
  s->state = Span::State::kFree;
  s->heap = this;
  size_t bin = BinOf(s->npages);
  bins_[bin].PushFront(s);
  nonempty_.Assign(bin, true);
  HeapRegion::MapFreeSpan(s);
  AccountFree(s, +1);
}

void PageHeap::Unlink(Span* s) {
  size_t bin = BinOf(s->npages);
  bins_[bin].Remove(s);
  if (bins_[bin].empty()) nonempty_.Assign(bin, false);
  AccountFree(s, -1);
}

// Free spans that fit a small span, looked at for the fullest hugepage: enough to find a
// fuller one in a heap whose hugepages drain unevenly, few enough to keep Allocate short.
constexpr int kFitCandidates = 8;
constexpr int kCompactCandidates = 2;  // off hugepages (FindFit)
constexpr int kMaxExamined = 64;
constexpr uintptr_t kNoFit = UINTPTR_MAX;
constexpr size_t kHugePages = HugePageFiller::kPagesPerHugePage;

// Where in free span s a span of npages (of `family`) may start: its first page that is
// a multiple of align_pages, or, when a hugepage of another family holds that, the first
// such page past the next hugepage boundary. kNoFit when neither fits.
uintptr_t PageHeap::Place(const Span* s, size_t npages, size_t align_pages, uint8_t family) const {
  const uintptr_t end = s->first_page + s->npages;
  uintptr_t start = RoundUp(s->first_page, align_pages);
  if (start + npages > end) return kNoFit;
  if (filler_.Accepts(start, npages, family)) return start;
  start = RoundUp(RoundUp(start + 1, kHugePages), align_pages);
  if (start + npages > end || !filler_.Accepts(start, npages, family)) return kNoFit;
  return start;
}

// A free span holding `npages` at a page index that is a multiple of `align_pages`, in
// a hugepage that takes spans of `family`. For a small span on hugepages, the one whose
// hugepage is the fullest among the first few that fit (the filler's order: the others
// drain, to go back to the OS whole), else the lower of the first two that fit; among
// the big free spans, the one lowest in the heap.
PageHeap::Fit PageHeap::FindFit(size_t npages, size_t align_pages, uint8_t family) {
  Fit fit{nullptr, kNoFit};
  if (npages <= kMaxBin) {
    uint32_t fullest_used = 0;
    int seen = 0, examined = 0;
    for (size_t bin = nonempty_.NextFrom(npages); bin <= kMaxBin && examined < kMaxExamined;
         bin = nonempty_.NextFrom(bin + 1)) {
      for (Span* s = bins_[bin].first(); s != nullptr && examined < kMaxExamined; s = s->next) {
        ++examined;
        const uintptr_t start = Place(s, npages, align_pages, family);
        if (start == kNoFit) continue;
        // Off hugepages every idle free page goes back anyway: of the first two that fit
        // (the best fit and the next), the lower, which keeps blocks toward the heap's
        // low end. bench-mix's peak RSS at two threads: 39.5 MiB, 40.7 with the best fit
        // alone; with three candidates, or the lowest of the whole first bin,
        // bench-realloc's went from 87.3 to 90.3 MiB.
        if (!filler_.on_hugepages()) {
          if (fit.span == nullptr || start < fit.start) fit = Fit{s, start};
          if (++seen == kCompactCandidates) return fit;
          continue;
        }
        const uint32_t used = filler_.Fullness(start);
        if (fit.span == nullptr || used > fullest_used) {
          fit = Fit{s, start};
          fullest_used = used;
        }
        if (++seen == kFitCandidates) return fit;
      }
    }
    if (fit.span != nullptr) return fit;
  }
  // Address-ordered first fit among the big free spans (the lowest that holds the
  // block). Best fit (the smallest span that fits) spread blocks of 1 - 32 MiB over the
  // heap: bench-large's peak RSS at one thread 122.3 MiB against 108.4, bench-realloc's
  // 92.4 against 87.6. At two threads bench-large's peak is bimodal either way (108 - 217
  // MiB) and its wall time 6 - 16 % worse than with best fit, paired both ways
  // (docs/performance.md, 2026-12-07, sixth and seventh sessions).
  for (Span* s = bins_[0].first(); s != nullptr; s = s->next) {
    const uintptr_t start = Place(s, npages, align_pages, family);
    if (start != kNoFit && (fit.span == nullptr || start < fit.start)) fit = Fit{s, start};
  }
  return fit;
}

// Cuts [start, + npages) out of free span `s` (already unlinked); the pieces before and
// after go back on the free lists.
Span* PageHeap::Carve(Span* s, size_t npages, uintptr_t start) {
  if (start > s->first_page) {
    Span* front = g_span_pool.New();
    if (front == nullptr) {
      // As below: unlinked and lost, the span's pages would still say free, and the
      // next Coalesce beside them would unlink a span on no list.
      Insert(s);
      return nullptr;
    }
    front->first_page = s->first_page;
    front->npages = static_cast<uint32_t>(start - s->first_page);
    front->closed = s->closed;
    s->first_page = start;
    s->npages -= front->npages;
    Insert(front);
  }
  if (s->npages > npages) {
    Span* back = g_span_pool.New();
    if (back == nullptr) {
      Insert(s);  // keep the heap consistent: give everything back
      return nullptr;
    }
    back->first_page = s->first_page + npages;
    back->npages = static_cast<uint32_t>(s->npages - npages);
    back->closed = s->closed;
    s->npages = static_cast<uint32_t>(npages);
    Insert(back);
  }
  return s;
}

bool PageHeap::GrowHeap(size_t npages) {
  size_t granted = 0;
  uintptr_t first = g_region.Grow(npages, &granted);
  if (first == UINTPTR_MAX) return false;
  Span* s = g_span_pool.New();
  if (s == nullptr) return false;
  s->first_page = first;
  s->npages = static_cast<uint32_t>(granted);
  filler_.Attach(first, granted, small_pages_ + large_pages_);
  Insert(Coalesce(s));
  return true;
}

// The decay clock. Coarse: decays are hundreds of milliseconds, and the clock is read
// on every span the page heap hands out or takes back and every span retained (a
// batch of 1000 16,000-byte objects retains a span every 5 pairs: 15 % of its time
// went to reading the fine clock).
uint64_t PageHeap::Now() {
  return os::CoarseNowNanos();
}

// The free span starting where the family's last span ended, if the next span fits
// there: spans of one family follow each other in a hugepage with no gap between them
// (their lengths are multiples of the family's alignment), and a scan of the free lists
// might not reach that span before those of other families.
PageHeap::Fit PageHeap::FitAtHint(size_t npages, size_t align_pages, uint8_t family) {
  // Off hugepages the first fit is as good, and reuses freed holes first.
  if (!filler_.on_hugepages() || family >= kFillHints) return Fit{nullptr, kNoFit};
  const uintptr_t page = fill_hint_[family];
  if (page == 0 || page >= (g_region.used() >> kPageShift) ||
      !IsFreePage(HeapRegion::ClassAt(page)))
    return Fit{nullptr, kNoFit};
  Span* s = HeapRegion::SpanAt(page);
  if (s == nullptr || s->heap != this || s->state != Span::State::kFree || s->first_page != page)
    return Fit{nullptr, kNoFit};
  const uintptr_t start = Place(s, npages, align_pages, family);
  return start == kNoFit ? Fit{nullptr, kNoFit} : Fit{s, start};
}

// FindFit, growing the heap when nothing fits. Spans of a family share hugepages with
// others only when the heap cannot grow.
PageHeap::Fit PageHeap::FindFitOrGrow(size_t npages, size_t align_pages, uint8_t family) {
  Fit fit = FitAtHint(npages, align_pages, family);
  if (fit.span == nullptr) fit = FindFit(npages, align_pages, family);
  if (fit.span != nullptr) return fit;
  // The heap grows in whole hugepages, so an alignment that divides one needs no slack.
  const size_t slack = kHugePages % align_pages == 0 ? 0 : align_pages - 1;
  if (GrowHeap(npages + slack)) fit = FindFit(npages, align_pages, family);
  if (fit.span == nullptr && family != HugePageFiller::kFamilyAny)
    fit = FindFit(npages, align_pages, HugePageFiller::kFamilyAny);
  return fit;
}

Span* PageHeap::Allocate(size_t npages, size_t align_pages, uint8_t cls, bool* last_closed) {
  if (last_closed != nullptr) *last_closed = false;
  Closed closed = Closed::kNone;
  Span* s = AllocateLocked(npages, align_pages, cls, &closed);
  if (closed == Closed::kNone || s == nullptr) return s;
  // A guarded block's guard page is closed already when all of them were: one mprotect
  // for the block instead of two, each a walk of the block's page tables.
  const bool keep_last = last_closed != nullptr && closed == Closed::kAll && s->npages > 1;
  // Opened without the lock, as ClosePages closes: the span is the caller's already.
  if (OpenPages(s->first_page, s->npages - (keep_last ? 1 : 0))) {
    if (keep_last) *last_closed = true;
    return s;
  }
  TakeBack(s, Closed::kSome);  // still closed: whoever takes these pages next opens them
  return nullptr;
}

Span* PageHeap::AllocateLocked(size_t npages, size_t align_pages, uint8_t cls, Closed* closed) {
  if (npages == 0 || npages > UINT32_MAX || align_pages == 0) return nullptr;
  uint64_t now = Now();
  LockGuard g(lock_);
  MaybeReleaseOld(now);
  const uint8_t family = cls == kPageLarge || align_pages >= HugePageFiller::kFamilyAny
                             ? HugePageFiller::kFamilyAny
                             : static_cast<uint8_t>(align_pages);
  Fit fit{nullptr, kNoFit};
  if (filler_.on_hugepages() && npages >= kHugePages && kHugePages % align_pages == 0) {
    // A hugepage or more starts on a hugepage, so that its whole hugepages can be backed
    // as such; its tail's hugepage is left for small spans to fill.
    fit = FindFit(npages, kHugePages, family);
  }
  if (fit.span == nullptr) fit = FindFitOrGrow(npages, align_pages, family);
  if (fit.span == nullptr) return nullptr;
  Span* s = fit.span;
  Unlink(s);
  s = Carve(s, npages, fit.start);
  if (s == nullptr) return nullptr;
  *closed = kProtectFreePages ? s->closed : Closed::kNone;
  s->closed = Closed::kNone;
  s->state = cls == kPageLarge ? Span::State::kLarge : Span::State::kSmall;
  s->size_class = cls == kPageLarge ? 0 : cls;
  s->next = s->prev = nullptr;
  filler_.OnAllocate(s->first_page, s->npages, family);
  if (family < kFillHints) fill_hint_[family] = s->first_page + npages;
  // Exactly which pages read as zero: a merged free span says only that some may not.
  HeapRegion::MapSpanInUse(s, cls);
  CountInUse(cls == kPageLarge, static_cast<long>(s->npages));
  ++spans_allocated_;
  return s;
}

// Merges free span `s` (not on a list) with free neighbours; returns the merged span.
Span* PageHeap::Coalesce(Span* s) {
  // Neighbours are found through the boundary tags; a heap only merges its own spans
  // (there is one page heap, but unit tests make private ones).
  Span* left = s->first_page > 0 && IsFreePage(HeapRegion::ClassAt(s->first_page - 1))
                   ? HeapRegion::SpanAt(s->first_page - 1)
                   : nullptr;
  if (left != nullptr && left->heap == this) {
    JS_ASSERT(left->state == Span::State::kFree && left->last_page() == s->first_page - 1);
    Unlink(left);
    left->npages += s->npages;
    left->closed = MergeClosed(left->closed, s->closed);
    g_span_pool.Delete(s);
    s = left;
  }
  uintptr_t right_page = s->first_page + s->npages;
  Span* right =
      right_page < (g_region.used() >> kPageShift) && IsFreePage(HeapRegion::ClassAt(right_page))
          ? HeapRegion::SpanAt(right_page)
          : nullptr;
  if (right != nullptr && right->heap == this) {
    JS_ASSERT(right->state == Span::State::kFree && right->first_page == right_page);
    Unlink(right);
    s->npages += right->npages;
    s->closed = MergeClosed(s->closed, right->closed);
    g_span_pool.Delete(right);
  }
  return s;
}

void PageHeap::CountInUse(bool large, long npages) {
  size_t& pages = large ? large_pages_ : small_pages_;
  __atomic_store_n(&pages, pages + static_cast<size_t>(npages), __ATOMIC_RELAXED);
}

void PageHeap::Deallocate(Span* s) {
  JS_ASSERT(s->state != Span::State::kFree);
  TakeBack(s,
           s->state == Span::State::kLarge ? ClosePages(s->first_page, s->npages) : Closed::kNone);
}

void PageHeap::TakeBack(Span* s, Closed closed) {
  uint64_t now = Now();
  LockGuard g(lock_);
  CountInUse(s->state == Span::State::kLarge, -static_cast<long>(s->npages));
  s->freelist = nullptr;
  s->allocated = 0;
  s->in_nonempty = false;
  s->closed = closed;
  HeapRegion::MarkPagesFree(s);
  filler_.OnFree(s->first_page, s->npages, now);
  Insert(Coalesce(s));
  MaybeReleaseOld(now);
}

bool PageHeap::TryExtend(Span* s, size_t npages, bool* maybe_dirty) {
  const size_t before = s->npages;
  // Pages that cannot be opened go back as the free tail they were, which takes a span
  // record: taken first, so that the span is never left holding closed pages beyond
  // what its caller knows of it (a guarded block's guard would then be looked for on
  // the wrong page at its next resize).
  Span* tail = nullptr;
  if constexpr (kProtectFreePages) {
    tail = g_span_pool.New();
    if (tail == nullptr) return false;
  }
  Closed closed = Closed::kNone;
  const bool grew =
      TryExtendLocked(s, npages, maybe_dirty, &closed) &&
      (closed == Closed::kNone || OpenPages(s->first_page + before, s->npages - before));
  if (!grew && s->npages > before) {
    ShrinkInto(s, before, tail);  // its pages closed again
  } else if (tail != nullptr) {
    g_span_pool.Delete(tail);
  }
  return grew;
}

bool PageHeap::TryExtendLocked(Span* s, size_t npages, bool* maybe_dirty, Closed* closed) {
  LockGuard g(lock_);
  if (npages <= s->npages) return true;
  uintptr_t right_page = s->first_page + s->npages;
  if (right_page >= (g_region.used() >> kPageShift) ||
      !IsFreePage(HeapRegion::ClassAt(right_page))) {
    return false;
  }
  Span* right = HeapRegion::SpanAt(right_page);
  if (right->heap != this) return false;
  size_t need = npages - s->npages;
  if (right->npages < need) return false;
  Unlink(right);
  right = Carve(right, need, right->first_page);
  if (right == nullptr) return false;
  *closed = kProtectFreePages ? right->closed : Closed::kNone;
  if (maybe_dirty != nullptr) {
    // As Allocate learns it: which of the pages taken read as zero (MapWholeSpan below
    // maps them again, as the block's).
    HeapRegion::MapSpanInUse(right, kPageLarge);
    *maybe_dirty = right->committed;
  }
  s->npages += right->npages;
  CountInUse(true, static_cast<long>(right->npages));
  filler_.OnAllocate(right->first_page, right->npages, HugePageFiller::kFamilyAny);
  g_span_pool.Delete(right);
  HeapRegion::MapWholeSpan(s, kPageLarge);
  return true;
}

void PageHeap::Shrink(Span* s, size_t npages) {
  if (npages >= s->npages) return;
  Span* tail = g_span_pool.New();
  if (tail == nullptr) return;  // keep the larger span: harmless
  ShrinkInto(s, npages, tail);
}

void PageHeap::ShrinkInto(Span* s, size_t npages, Span* tail) {
  uint64_t now = Now();
  // The tail is still the caller's: closed before the lock (see ClosePages).
  const Closed closed = ClosePages(s->first_page + npages, s->npages - npages);
  LockGuard g(lock_);
  tail->first_page = s->first_page + npages;
  tail->npages = static_cast<uint32_t>(s->npages - npages);
  tail->closed = closed;
  s->npages = static_cast<uint32_t>(npages);
  CountInUse(true, -static_cast<long>(tail->npages));
  HeapRegion::MarkPagesFree(tail);
  filler_.OnFree(tail->first_page, tail->npages, now);
  Insert(Coalesce(tail));
}

void PageHeap::MaybeReleaseOld(uint64_t now) {
  if (now < __atomic_load_n(&next_release_check_ns_, __ATOMIC_RELAXED)) return;
  __atomic_store_n(&next_release_check_ns_, now + decay_ns() / 4, __ATOMIC_RELAXED);
  filler_.ReleaseIdle(now, decay_ns_, small_pages_ + large_pages_);
}

void PageHeap::ReleaseOldIfDue(uint64_t now) {
  if (now < __atomic_load_n(&next_release_check_ns_, __ATOMIC_RELAXED)) return;
  LockGuard g(lock_);
  MaybeReleaseOld(now);
}

size_t PageHeap::ReleaseAll() {
  LockGuard g(lock_);
  return filler_.ReleaseAll() << kPageShift;
}

size_t PageHeap::CollapseDense(size_t max) {
  constexpr size_t kMaxPerCall = 64;
  uintptr_t hugepages[kMaxPerCall];
  size_t n;
  {
    LockGuard g(lock_);
    n = filler_.CollapseCandidates(hugepages, max < kMaxPerCall ? max : kMaxPerCall,
                                   small_pages_ + large_pages_);
  }
  size_t collapsed = 0;
  for (size_t i = 0; i < n; ++i) {
    void* at = HeapRegion::AddressOf(hugepages[i] * HugePageFiller::kPagesPerHugePage);
    const int error = os::CollapseHugepages(at, kHugePageSize);
    LockGuard g(lock_);
    filler_.OnCollapsed(hugepages[i], error);
    collapsed += error == 0;
    if (!filler_.collapses()) break;  // the kernel cannot
  }
  return collapsed;
}

PageHeap::Stats PageHeap::GetStats() {
  LockGuard g(lock_);
  const size_t dirty = filler_.dirty_pages();
  return Stats{dirty << kPageShift,
               (free_pages_ - dirty) << kPageShift,
               small_pages_ << kPageShift,
               large_pages_ << kPageShift,
               spans_allocated_,
               free_spans_,
               filler_.hugepage_backed_bytes(),
               filler_.released_total_pages() << kPageShift,
               filler_.refaulted_total_pages() << kPageShift};
}

}  // namespace jsmalloc
