#include "backend/hugepage_filler.h"

#include <errno.h>

#include "backend/heap_region.h"
#include "os/thp.h"
#include "os/vm.h"
#include "size_class.h"

namespace jsmalloc {

namespace {

constexpr size_t kPages = HugePageFiller::kPagesPerHugePage;
// Pages to a group of the recently-freed masks: 64 groups a hugepage, or one page each.
constexpr size_t kGroupPages = kPages >= 64 ? kPages / 64 : 1;
static_assert(kPages / kGroupPages <= 64);
constexpr uint8_t kBacked = 1;       // in use since it was last whole and empty, THP applies
constexpr uint8_t kBroken = 2;       // subreleased since: the kernel maps it in 4 KiB pages
constexpr uint8_t kAdvised = 4;      // MADV_HUGEPAGE applies (or the system's `always`)
constexpr uint8_t kCollapsible = 8;  // on 4 KiB pages, but collapsed once dense
constexpr uint8_t kDenseSeen = 16;   // dense at the last collapse pass, no page freed since
constexpr uint8_t kCollapsing = 32;  // a candidate: not released since it was chosen
// The kernel could not collapse it as its mappings were (a guard page or a closed
// block inside: the secure library's): not a candidate until a span in it comes or goes.
constexpr uint8_t kRefused = 64;
// Hugepages placed as if on THP (one family to each, Accepts).
constexpr uint8_t kPlaced = kAdvised | kCollapsible;

// Whether r's hugepage is backed by a hugepage (counted in hugepage_backed_bytes):
// in use since it was last whole and empty, and not subreleased since.
bool IsBacked(const HugePageFiller::Record& r) {
  return (r.flags & (kBacked | kBroken)) == kBacked;
}

// One record per hugepage of the heap reservation, reserved on first use (20 MiB of
// address space for a 1 TiB heap; only the records of hugepages grown into are
// touched). Shared by every filler: each page heap grows into hugepages of its own.
constinit HugePageFiller::Record* g_records = nullptr;
constinit uint8_t g_next_id = 0;
constinit HugepageMode g_mode = HugepageMode::kAuto;
constinit bool g_collapse = false;

HugePageFiller::Record* Records() {
  HugePageFiller::Record* r = __atomic_load_n(&g_records, __ATOMIC_ACQUIRE);
  if (r != nullptr) return r;
  size_t bytes = RoundUp((g_region.capacity() / kHugePageSize + 1) * sizeof(*r), 4096);
  auto* fresh = static_cast<HugePageFiller::Record*>(os::Reserve(bytes, 4096));
  if (fresh == nullptr) return nullptr;
  // Page heaps with different locks (unit tests make private ones) may race here.
  if (!__atomic_compare_exchange_n(&g_records, &r, fresh, false, __ATOMIC_ACQ_REL,
                                   __ATOMIC_ACQUIRE)) {
    os::Unmap(fresh, bytes);
    return r;
  }
  return fresh;
}

// The pages of hugepage h that lie in [first, first + n): calls f(record, lo, hi).
template <typename F>
void ForEachHugePage(uintptr_t first, size_t n, F f) {
  HugePageFiller::Record* records = __atomic_load_n(&g_records, __ATOMIC_RELAXED);
  if (records == nullptr) return;
  const uintptr_t end = first + n;
  for (uintptr_t lo = first; lo < end;) {
    uintptr_t h = lo / kPages;
    uintptr_t hi = (h + 1) * kPages;
    if (hi > end) hi = end;
    f(&records[h], lo, hi);
    lo = hi;
  }
}

void* HugePageAddress(uintptr_t h) {
  return HeapRegion::AddressOf(h * kPages);
}

}  // namespace

void SetHugepageMode(HugepageMode mode) {
  g_mode = mode;
}

HugepageMode CurrentHugepageMode() {
  return g_mode;
}

uint8_t HugePageFiller::DecideThp(os::ThpSetting sys) {
  const bool on = g_mode == HugepageMode::kAuto     ? sys == os::ThpSetting::kAlways
                  : g_mode == HugepageMode::kAlways ? sys != os::ThpSetting::kNever
                                                    : false;
  const bool collapse =
      !on && g_collapse && g_mode == HugepageMode::kAuto && sys == os::ThpSetting::kMadvise;
  return on ? kThpAdvise : collapse ? kThpCollapse : kThpOff;
}

const char* HugepagePolicyText() {
  const os::ThpSetting sys = os::TransparentHugepageSetting();
  if (g_mode == HugepageMode::kNever) return "4 KiB pages (HUGEPAGES=never)";
  if (sys != os::ThpSetting::kMadvise && sys != os::ThpSetting::kAlways)
    return "4 KiB pages (the system's THP mode is never, or unknown)";
  switch (HugePageFiller::DecideThp(sys)) {
    case HugePageFiller::kThpAdvise:
      return "on hugepages from the first touch, once the heap holds 64 MiB";
    case HugePageFiller::kThpCollapse:
      return "4 KiB pages; dense hugepages collapsed by the background thread, once the heap "
             "holds 64 MiB";
    default:
      return "4 KiB pages (THP mode madvise: BACKGROUND_THREAD=1 collapses dense ones, "
             "HUGEPAGES=always asks for them)";
  }
}

void SetHugepageCollapse(bool on) {
  g_collapse = on;
}

bool HugepageCollapseWanted() {
  return g_collapse;
}

void HugePageFiller::Attach(uintptr_t first, size_t npages, size_t heap_pages) {
  Record* records = Records();
  if (records == nullptr) return;
  if (id_ == 0) id_ = __atomic_add_fetch(&g_next_id, 1, __ATOMIC_RELAXED);
  if (thp_ == kThpUndecided) {
    // kAuto follows the system: hugepages where its mode is `always`. In `madvise` mode
    // they are the program's choice (kAlways), because their first touch costs: here (a
    // VM whose host backs guest memory lazily) faulting in 1 GiB of 64 B objects took
    // 4.2 s on hugepages against 1.3 s without, and allocation-heavy runs (the seed's
    // free-desc) 2.6x mimalloc's time against 0.76x; a heap read at random for long
    // gains 25 % per read (bench-hugeread, 1 GiB: 261 against 347 ns). With the
    // background thread, kAuto has it collapse the dense hugepages instead: the program
    // faults 4 KiB pages in, and the copy onto a hugepage (about 2 ms each here) is
    // made off its threads, once, for memory that stayed dense.
    thp_ = DecideThp(os::TransparentHugepageSetting());
  }
  void* begin = HeapRegion::AddressOf(first);
  const size_t bytes = npages << kPageShift;
  // Dense hugepages save the TLB misses of a large heap read at random; in `madvise`
  // mode the kernel backs a range with them only when asked. A small heap is kept off
  // them, even where the system's mode is `always`.
  const bool large_heap = (heap_pages << kPageShift) >= kMinHeapForHugepages;
  const bool advise = thp_ == kThpAdvise && large_heap;
  // Collapsible from the start: the first 64 MiB are collapsed too once the heap is
  // large (CollapseCandidates looks at its size then).
  const bool collapsible = thp_ == kThpCollapse;
  if (advise) {
    os::AdviseHugepages(begin, bytes);
  } else if (g_mode == HugepageMode::kNever || thp_ == kThpAdvise) {
    os::AdviseNoHugepages(begin, bytes);
  }
  const uint8_t flags = advise ? kAdvised : collapsible ? kCollapsible : uint8_t{0};
  for (uintptr_t h = first / kPages; h < (first + npages) / kPages; ++h) {
    records[h] = Record{0, 0, 0, 0, 0, 0, 0, id_, flags, 0};
    if (h < lowest_) lowest_ = h;
    if (h + 1 > highest_) highest_ = h + 1;
  }
}

void HugePageFiller::SetBacked(Record* r, bool backed) {
  const bool was = IsBacked(*r);
  if (backed) {
    r->flags |= kBacked;
  } else {
    r->flags &= static_cast<uint8_t>(~kBacked);
  }
  const bool is = IsBacked(*r);
  backed_ += static_cast<size_t>(is) - static_cast<size_t>(was);
}

// The partition masks follow the records: a sub-region is committed while one of its
// hugepages has pages in use or dirty, pending release while one has dirty pages. The
// records of a whole sub-region are read (8 for a 1 GiB partition): sub-regions are
// shared by the fillers of private page heaps, and each record is the truth.
namespace {
void UpdateSubRegion(uintptr_t h) {
  const HugePageFiller::Record* records = __atomic_load_n(&g_records, __ATOMIC_RELAXED);
  const size_t per = g_region.sub_region_size() / kHugePageSize;
  if (records == nullptr || per == 0) return;
  const uintptr_t first = h / per * per;
  bool committed = false, pending = false;
  for (uintptr_t k = first; k < first + per; ++k) {
    committed |= records[k].used != 0 || records[k].dirty != 0;
    pending |= records[k].dirty != 0;
  }
  g_region.SetSubRegionState(first * kHugePageSize, committed, pending);
}

// The same for every sub-region holding pages [first, first + n), once each.
void UpdateSubRegions(uintptr_t first, size_t n) {
  const size_t per = g_region.sub_region_size() / kHugePageSize;
  if (per == 0 || n == 0) return;
  for (uintptr_t h = first / kPages / per * per; h <= (first + n - 1) / kPages; h += per)
    UpdateSubRegion(h);
}
}  // namespace

void HugePageFiller::OnAllocate(uintptr_t first, size_t n, uint8_t family) {
  ForEachHugePage(first, n, [&](Record* r, uintptr_t lo, uintptr_t hi) {
    uint32_t dirty = 0, zero = 0;
    const uint32_t free_pages = static_cast<uint32_t>(kPages - r->used);
    if (r->dirty == free_pages) {
      dirty = static_cast<uint32_t>(hi - lo);  // every free page of it is dirty
    } else if (r->dirty != 0 || r->released != 0) {
      // Mixed: which of these pages are which, the pagemap's tags say. (No dirty page
      // and none released: fresh pages, nothing to count.)
      for (uintptr_t p = lo; p < hi; ++p) {
        dirty += PageClass(p) == kPageFree;
        zero += PageClass(p) == kPageFreeZero;
      }
    }
    // Zero pages are released ones or never used ones (the boundary tags of fresh
    // spans read the same): at most the released count are faulted back.
    const uint32_t refaulted = zero < r->released ? zero : r->released;
    r->released = static_cast<uint16_t>(r->released - refaulted);
    refaulted_total_ += refaulted;
    // The first span in a hugepage gives it its family; large blocks take any.
    if (r->used == 0 || r->family == kFamilyAny) r->family = family;
    r->used = static_cast<uint16_t>(r->used + (hi - lo));
    r->dirty = static_cast<uint16_t>(r->dirty - dirty);
    dirty_pages_ -= dirty;
    if ((r->flags & (kAdvised | kBacked)) == kAdvised) SetBacked(r, true);
    r->flags &= static_cast<uint8_t>(~kRefused);
  });
  UpdateSubRegions(first, n);
}

bool HugePageFiller::Accepts(uintptr_t first, size_t n, uint8_t family) const {
  if (family == kFamilyAny) return true;
  const Record* records = __atomic_load_n(&g_records, __ATOMIC_RELAXED);
  if (records == nullptr) return true;
  // A span is at most a hugepage here, so it touches its first and last hugepage only.
  // The tail of a hugepage too short for another span of its own family (small spans
  // are at most kMaxSmallSpanPages) takes any: left empty, it would be as resident, and unused.
  for (uintptr_t h : {first / kPages, (first + n - 1) / kPages}) {
    const Record& r = records[h];
    if ((r.flags & kPlaced) != 0 && r.used != 0 && r.family != family && r.family != kFamilyAny &&
        kPages - r.used > kMaxSmallSpanPages)
      return false;
  }
  return true;
}

void HugePageFiller::Age(Record* r) const {
  if (r->epoch == epoch_) return;
  r->freed_before = r->epoch + 1 == epoch_ ? r->freed_now : 0;
  r->freed_now = 0;
  r->epoch = epoch_;
}

void HugePageFiller::AdvanceEpoch(uint64_t now, uint64_t decay_ns) {
  if (epoch_start_ns_ == 0) epoch_start_ns_ = now;
  if (now < epoch_start_ns_ + decay_ns) return;
  // Two epochs at most: after a long quiet spell everything freed before it is idle.
  epoch_ += now >= epoch_start_ns_ + 2 * decay_ns ? 2 : 1;
  epoch_start_ns_ = now;
}

void HugePageFiller::OnFree(uintptr_t first, size_t n, uint64_t now) {
  ForEachHugePage(first, n, [&](Record* r, uintptr_t lo, uintptr_t hi) {
    Age(r);
    const size_t g_lo = (lo % kPages) / kGroupPages, g_hi = ((hi - 1) % kPages) / kGroupPages;
    r->freed_now |= (~uint64_t{0} >> (63 - g_hi)) & (~uint64_t{0} << g_lo);
    r->used = static_cast<uint16_t>(r->used - (hi - lo));
    r->dirty = static_cast<uint16_t>(r->dirty + (hi - lo));
    dirty_pages_ += hi - lo;
    r->last_free_ns = now;
    r->flags &= static_cast<uint8_t>(~(kDenseSeen | kRefused));
    if (r->used == 0) r->family = 0;
  });
  UpdateSubRegions(first, n);
}

// Gives back the dirty free pages of hugepage h outside the groups in `keep`: in one
// call when no page of it is in use and none is kept (and it can be a hugepage again on
// its next use), else run by run.
size_t HugePageFiller::Release(uintptr_t h, Record* r, uint64_t keep) {
  const bool whole = r->used == 0 && keep == 0;
  if (whole && !os::Decommit(HugePageAddress(h), kHugePageSize)) return 0;
  const auto releasable = [&](size_t i) {
    return PageClass(h * kPages + i) == kPageFree && ((keep >> (i / kGroupPages)) & 1) == 0;
  };
  size_t released = 0;
  for (size_t i = 0; i < kPages;) {
    if (!releasable(i)) {
      ++i;
      continue;
    }
    size_t stop = i;
    while (stop < kPages && releasable(stop)) ++stop;
    // If the OS refused, the pages still hold their data: they stay dirty.
    if (whole || os::Decommit(HeapRegion::AddressOf(h * kPages + i), (stop - i) << kPageShift)) {
      HeapRegion::MarkPages(h * kPages + i, stop - i, kPageFreeZero);
      released += stop - i;
    }
    i = stop;
  }
  r->dirty = static_cast<uint16_t>(r->dirty - released);
  r->released = static_cast<uint16_t>(r->released + released);
  dirty_pages_ -= released;
  released_total_ += released;
  if (released != 0) r->flags &= static_cast<uint8_t>(~kCollapsing);
  if (r->used == 0 && r->dirty == 0) {
    SetBacked(r, false);
    r->flags &= kPlaced;
  } else if (released != 0 && (r->flags & kBroken) == 0) {
    const bool was = (r->flags & kBacked) != 0;
    r->flags |= kBroken;
    backed_ -= static_cast<size_t>(was);
  }
  UpdateSubRegion(h);
  return released;
}

size_t HugePageFiller::Subrelease(uint64_t now, uint64_t decay_ns, size_t need) {
  Record* records = __atomic_load_n(&g_records, __ATOMIC_RELAXED);
  size_t released = 0;
  // The emptiest first, in eight bands of fullness: their hugepage is mostly wasted
  // anyway, and they are the likeliest to drain. Each hugepage is looked at in its band
  // only: one scan of its pages a pass.
  for (size_t band = 1; band <= 8 && released < need; ++band) {
    const size_t min_used = band == 1 ? 0 : (band - 1) * kPages / 8 + 1;
    const size_t max_used = band * kPages / 8;
    for (uintptr_t h = lowest_; h < highest_ && released < need; ++h) {
      Record* r = &records[h];
      if (r->owner != id_ || r->dirty == 0 || r->used < min_used || r->used > max_used) continue;
      // Idle for the decay time: all of it; else the groups freed before the last epoch.
      uint64_t keep = 0;
      if (now < r->last_free_ns + decay_ns) {
        Age(r);
        keep = r->freed_now | r->freed_before;
      }
      released += Release(h, r, keep);
    }
  }
  return released;
}

size_t HugePageFiller::ReleaseIdle(uint64_t now, uint64_t decay_ns, size_t in_use_pages) {
  AdvanceEpoch(now, decay_ns);
  if (dirty_pages_ == 0) return 0;
  Record* records = __atomic_load_n(&g_records, __ATOMIC_RELAXED);
  size_t released = 0;
  for (uintptr_t h = lowest_; h < highest_; ++h) {
    Record* r = &records[h];
    if (r->owner != id_ || r->dirty == 0) continue;
    // Whole hugepages after the decay time; the free pages of a partly used one after
    // twice that, whatever the slack, so that a quiet heap gives everything back on the
    // decay clock. One in use keeps freeing pages, which keeps it young and whole.
    if (now < r->last_free_ns + (r->used == 0 ? decay_ns : 2 * decay_ns)) continue;
    released += Release(h, r);
  }
  // Off hugepages there is nothing to keep whole: every idle free page goes back.
  const size_t min_slack = on_hugepages() ? (size_t{16} << 20) >> kPageShift : 0;
  size_t slack = on_hugepages() ? in_use_pages / 8 : 0;
  if (slack < min_slack) slack = min_slack;
  if (dirty_pages_ > slack) released += Subrelease(now, decay_ns, dirty_pages_ - slack);
  return released;
}

size_t HugePageFiller::ReleaseAll() {
  Record* records = __atomic_load_n(&g_records, __ATOMIC_RELAXED);
  size_t released = 0;
  for (uintptr_t h = lowest_; h < highest_ && dirty_pages_ != 0; ++h) {
    Record* r = &records[h];
    if (r->owner == id_ && r->dirty != 0) released += Release(h, r);
  }
  return released;
}

// Dense: most of it in use (a hugepage mostly free would soon be subreleased, and broken
// again), and collapsing it makes little resident that was not: its free pages that
// read as zero (released, or never touched) are at most a 16th of it. Spans handed out
// count as resident, though a span being carved may not be touched to its end yet.
size_t HugePageFiller::CollapseCandidates(uintptr_t* out, size_t max, size_t in_use_pages) {
  Record* records = __atomic_load_n(&g_records, __ATOMIC_RELAXED);
  if (!collapses() || records == nullptr) return 0;
  if ((in_use_pages << kPageShift) < kMinHeapForHugepages) return 0;
  size_t n = 0;
  for (uintptr_t h = lowest_; h < highest_ && n < max; ++h) {
    Record* r = &records[h];
    if (r->owner != id_ || (r->flags & (kCollapsible | kRefused)) != kCollapsible) continue;
    if (IsBacked(*r)) continue;  // a hugepage already
    const uint32_t zero = static_cast<uint32_t>(kPages - r->used - r->dirty);
    if (r->used < kPages * 7 / 8 || zero > kPages / 16) {
      r->flags &= static_cast<uint8_t>(~kDenseSeen);
      continue;
    }
    // Dense at two passes in a row, no page freed in between: it is likely to stay so,
    // where a burst about to be freed is not worth a copy.
    if ((r->flags & kDenseSeen) == 0) {
      r->flags |= kDenseSeen;
      continue;
    }
    r->flags |= kCollapsing;
    out[n++] = h;
  }
  return n;
}

void HugePageFiller::OnCollapsed(uintptr_t h, int error) {
  Record* records = __atomic_load_n(&g_records, __ATOMIC_RELAXED);
  Record* r = &records[h];
  const bool still = (r->flags & kCollapsing) != 0;
  r->flags &= static_cast<uint8_t>(~(kCollapsing | kDenseSeen));
  // EINVAL: a kernel without MADV_COLLAPSE (before 6.1) says it for every range, and the
  // heap stops asking; one with it, for a hugepage that is not one mapping of one
  // protection (the secure library's guard pages and closed blocks split the heap's),
  // which waits until its spans change. Taking the first for the second left the
  // secure library's heap on 4 KiB pages after its first guard page. Other errors
  // (EAGAIN, ENOMEM: no free hugepage now) are tried again two passes on.
  if (error == EINVAL) {
    if (!os::CollapseSupported()) {
      thp_ = kThpOff;
    } else {
      r->flags |= kRefused;
    }
  }
  // Released while it was being collapsed: the kernel may have split it again.
  if (error != 0 || !still || r->owner != id_) return;
  const bool was = IsBacked(*r);
  r->flags = static_cast<uint8_t>((r->flags | kBacked) & ~kBroken);
  backed_ += static_cast<size_t>(!was);
  ++collapsed_total_;
}

uint32_t HugePageFiller::Fullness(uintptr_t page) const {
  Record* records = __atomic_load_n(&g_records, __ATOMIC_RELAXED);
  return records == nullptr ? 0 : records[page / kPages].used;
}

const HugePageFiller::Record* HugePageFiller::RecordOf(uintptr_t page) {
  Record* records = __atomic_load_n(&g_records, __ATOMIC_RELAXED);
  return records == nullptr ? nullptr : &records[page / kPages];
}

bool HugePageFiller::BackedByHugepage(uintptr_t page) {
  const Record* r = RecordOf(page);
  return r != nullptr && IsBacked(*r);
}

}  // namespace jsmalloc
