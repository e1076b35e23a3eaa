#include "backend/page_heap.h"

#include "backend/meta_arena.h"
#include "os/sys.h"
#include "os/vm.h"
#include "size_class.h"

namespace jsmalloc {

constinit PageHeap g_page_heap;
constinit RecordPool<Span> g_span_pool;

namespace {
size_t BinOf(size_t npages) {
  return npages <= 128 ? npages : 0;
}
}  // namespace

void PageHeap::AccountFree(Span* s, long sign) {
  size_t& counter = s->committed ? free_committed_pages_ : free_released_pages_;
  counter += static_cast<size_t>(sign) * s->npages;
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

// A free span holding `npages` at a page index that is a multiple of `align_pages`.
Span* PageHeap::FindFit(size_t npages, size_t align_pages) {
  auto fits = [&](const Span* s) {
    uintptr_t start = RoundUp(s->first_page, align_pages);
    return start + npages <= s->first_page + s->npages;
  };
  if (npages <= kMaxBin) {
    for (size_t bin = nonempty_.NextFrom(npages); bin <= kMaxBin;
         bin = nonempty_.NextFrom(bin + 1)) {
      for (Span* s = bins_[bin].first(); s != nullptr; s = s->next) {
        if (fits(s)) return s;
      }
    }
  }
  // Best fit among the big free spans; lower address on ties keeps the heap compact.
  Span* best = nullptr;
  for (Span* s = bins_[0].first(); s != nullptr; s = s->next) {
    if (!fits(s)) continue;
    if (best == nullptr || s->npages < best->npages ||
        (s->npages == best->npages && s->first_page < best->first_page)) {
      best = s;
    }
  }
  return best;
}

// Cuts [aligned start, + npages) out of free span `s` (already unlinked); the pieces
// before and after go back on the free lists.
Span* PageHeap::Carve(Span* s, size_t npages, size_t align_pages) {
  uintptr_t start = RoundUp(s->first_page, align_pages);
  if (start > s->first_page) {
    Span* front = g_span_pool.New();
    if (front == nullptr) return nullptr;
    front->first_page = s->first_page;
    front->npages = static_cast<uint32_t>(start - s->first_page);
    front->committed = s->committed;
    front->free_since_ns = s->free_since_ns;
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
    back->committed = s->committed;
    back->free_since_ns = s->free_since_ns;
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
  s->committed = false;  // fresh pages read as zero
  s->free_since_ns = 0;
  Insert(Coalesce(s));
  return true;
}

uint64_t PageHeap::Now() {
  return os::NowNanos();
}

Span* PageHeap::Allocate(size_t npages, size_t align_pages, uint8_t cls) {
  if (npages == 0 || npages > UINT32_MAX || align_pages == 0) return nullptr;
  uint64_t now = os::NowNanos();
  LockGuard g(lock_);
  MaybeReleaseOld(now);
  Span* s = FindFit(npages, align_pages);
  if (s == nullptr) {
    if (!GrowHeap(npages + align_pages - 1)) return nullptr;
    s = FindFit(npages, align_pages);
    if (s == nullptr) return nullptr;
  }
  Unlink(s);
  s = Carve(s, npages, align_pages);
  if (s == nullptr) return nullptr;
  s->state = cls == kPageLarge ? Span::State::kLarge : Span::State::kSmall;
  s->size_class = cls == kPageLarge ? 0 : cls;
  s->next = s->prev = nullptr;
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
    left->committed = left->committed || s->committed;
    if (s->free_since_ns > left->free_since_ns) left->free_since_ns = s->free_since_ns;
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
    s->committed = s->committed || right->committed;
    if (right->free_since_ns > s->free_since_ns) s->free_since_ns = right->free_since_ns;
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
  uint64_t now = os::NowNanos();
  LockGuard g(lock_);
  CountInUse(s->state == Span::State::kLarge, -static_cast<long>(s->npages));
  s->committed = true;
  s->free_since_ns = now;
  s->freelist = nullptr;
  s->allocated = 0;
  s->in_nonempty = false;
  HeapRegion::MarkPagesFree(s);
  Insert(Coalesce(s));
  MaybeReleaseOld(now);
}

bool PageHeap::TryExtend(Span* s, size_t npages) {
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
  right = Carve(right, need, 1);
  if (right == nullptr) return false;
  s->npages += right->npages;
  CountInUse(true, static_cast<long>(right->npages));
  g_span_pool.Delete(right);
  HeapRegion::MapWholeSpan(s, kPageLarge);
  return true;
}

void PageHeap::Shrink(Span* s, size_t npages) {
  if (npages >= s->npages) return;
  Span* tail = g_span_pool.New();
  if (tail == nullptr) return;  // keep the larger span: harmless
  uint64_t now = os::NowNanos();
  LockGuard g(lock_);
  tail->first_page = s->first_page + npages;
  tail->npages = static_cast<uint32_t>(s->npages - npages);
  tail->committed = true;
  tail->free_since_ns = now;
  s->npages = static_cast<uint32_t>(npages);
  CountInUse(true, -static_cast<long>(tail->npages));
  HeapRegion::MarkPagesFree(tail);
  Insert(Coalesce(tail));
}

void PageHeap::Release(Span* s) {
  if (!s->committed) return;
  // If the OS refused, the pages still hold their data: they stay committed.
  if (!os::Decommit(HeapRegion::AddressOf(s->first_page), size_t{s->npages} << kPageShift)) return;
  free_committed_pages_ -= s->npages;
  free_released_pages_ += s->npages;
  s->committed = false;
  HeapRegion::MarkPagesFree(s, true);
}

void PageHeap::MaybeReleaseOld(uint64_t now) {
  if (now < __atomic_load_n(&next_release_check_ns_, __ATOMIC_RELAXED)) return;
  __atomic_store_n(&next_release_check_ns_, now + decay_ns() / 4, __ATOMIC_RELAXED);
  if (free_committed_pages_ == 0) return;
  for (auto& bin : bins_) {
    for (Span* s = bin.first(); s != nullptr; s = s->next) {
      if (s->committed && now - s->free_since_ns >= decay_ns_) Release(s);
    }
  }
}

void PageHeap::ReleaseOldIfDue(uint64_t now) {
  if (now < __atomic_load_n(&next_release_check_ns_, __ATOMIC_RELAXED)) return;
  LockGuard g(lock_);
  MaybeReleaseOld(now);
}

size_t PageHeap::ReleaseAll() {
  LockGuard g(lock_);
  size_t before = free_committed_pages_;
  for (auto& bin : bins_) {
    for (Span* s = bin.first(); s != nullptr; s = s->next) Release(s);
  }
  return (before - free_committed_pages_) << kPageShift;
}

PageHeap::Stats PageHeap::GetStats() {
  LockGuard g(lock_);
  return Stats{free_committed_pages_ << kPageShift,
               free_released_pages_ << kPageShift,
               small_pages_ << kPageShift,
               large_pages_ << kPageShift,
               spans_allocated_,
               free_spans_};
}

}  // namespace jsmalloc
