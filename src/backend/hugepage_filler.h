// The page heap's view of the heap in hugepages (2 MiB): for each one, how many of its
// pages are in spans handed out, how many free pages may still hold data (dirty: they
// are resident, or will be on the next touch of old data), and when a page of it last
// became free. The page heap's spans merge across hugepages and live for any time; a
// span's own age would say nothing about most of its pages (one block freed every
// millisecond kept a 500 MiB free span forever young). So ages, dirtiness and the
// decision what to give back to the OS are per hugepage, here:
//
//  - a hugepage whose pages are all free and that has been idle for the decay time goes
//    back whole, in one madvise, so the kernel can reuse a whole hugepage;
//  - a partly used hugepage gives back its free pages (subrelease, breaking it into 4 KiB
//    pages in the kernel's eyes) only when a release pass needs more: the dirty free
//    pages idle for the decay time are more than the slack the heap may keep (an eighth
//    of what is in use, 16 MiB at least), emptiest hugepages first; or when no page of it
//    was freed for twice the decay time (a quiet heap gives everything back); or always,
//    where the heap is not on hugepages at all;
//  - which free pages of a hugepage are idle is known to 1/64 of it (a group: 32 KiB of
//    8 KiB pages): a pass lets each group age one decay epoch after the epoch a page of it
//    was freed in, so that a hole freed long ago goes back though the hugepage around it
//    keeps freeing pages. Ages per hugepage alone kept a busy heap's holes forever: after
//    a spike, a cache replacing random entries frees into every hugepage often enough that
//    none was ever idle, and 64 MiB of holes stayed resident;
//  - the page heap packs small spans into the fullest hugepage that fits them
//    (Fullness), so that the others drain and can go back whole;
//  - a hugepage on transparent hugepages holds spans of one alignment family only
//    (Accepts). A span of class S starts on a multiple of S / gcd(S, page) pages, so a
//    span placed after one of another family leaves a gap of up to 30 free pages. On 4 KiB
//    pages a gap is never touched and costs nothing; inside a hugepage the kernel backs
//    it like the rest (+16 % peak RSS for a heap of random sizes up to 4 KiB). One
//    family to a hugepage leaves at most one gap in it;
//  - the heap goes on hugepages only once it holds kMinHeapForHugepages: a small heap
//    gains next to nothing in TLB reach and would pay up to 2 MiB per hugepage touched;
//  - where the system's THP mode is `madvise` and the background thread runs, kAuto
//    faults the heap in as 4 KiB pages (a hugepage's first fault costs milliseconds
//    here) but places it as on hugepages, and the background thread collapses the
//    hugepages that stay dense (CollapseCandidates) onto real ones.
//
// The pagemap's tags stay the truth about each page (kPageFree: may hold data,
// kPageFreeZero / kPageUnused: reads as zero); the counts here follow them exactly. Every
// call is made with the owning page heap's lock held.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common.h"
#include "os/thp.h"
#include "size_class.h"

namespace jsmalloc {

// Where the heap asks the kernel for transparent hugepages (JSMALLOC_HUGEPAGES).
enum class HugepageMode : uint8_t {
  kAuto = 0,    // as the system's THP mode says: hugepages where it is `always`
  kAlways = 1,  // MADV_HUGEPAGE also where it is `madvise` (it cannot override `never`)
  kNever = 2,   // MADV_NOHUGEPAGE: 4 KiB pages even where the system says `always`
};

class HugePageFiller {
 public:
  // What a heap does with THP, decided once from the mode and the system's setting.
  static uint8_t DecideThp(os::ThpSetting sys);
  static constexpr uint8_t kThpOff = 0;
  static constexpr uint8_t kThpAdvise = 1;    // MADV_HUGEPAGE (or the system's `always`)
  static constexpr uint8_t kThpCollapse = 2;  // 4 KiB faults, dense hugepages collapsed
  static constexpr uint8_t kThpUndecided = 0xFF;

  static constexpr size_t kPagesPerHugePage =
      kHugePageSize >> kPageShift != 0 ? kHugePageSize >> kPageShift : 1;

  static constexpr size_t kMinHeapForHugepages = size_t{64} << 20;
  // The longest span of any size class (31 pages: a class 31 times a power of two): a
  // hugepage's tail shorter than that may take spans of any family (Accepts).
  static constexpr size_t kMaxSmallSpanPages = [] {
    size_t most = 0;
    for (int c = 1; c < kNumClasses; ++c)
      if (kClasses[c].span_pages > most) most = kClasses[c].span_pages;
    return most;
  }();
  // Families of spans: a small span's alignment in pages (1..), kFamilyAny for large
  // blocks, which may go anywhere.
  static constexpr uint8_t kFamilyAny = 0xFF;

  // Pages [first, first + npages), whole hugepages, were just grown into by this heap,
  // which has `heap_pages` in spans handed out. They are free and read as zero. Asks
  // for hugepages on them as the mode says.
  void Attach(uintptr_t first, size_t npages, size_t heap_pages);
  // Pages [first, + n) are being handed out for a span of `family`: call before their
  // pagemap tags are rewritten.
  void OnAllocate(uintptr_t first, size_t n, uint8_t family);
  // Whether a span of `family` may take pages [first, + n): on hugepages not backed as
  // such, anywhere; else only where no page is in use or the spans are of its family.
  bool Accepts(uintptr_t first, size_t n, uint8_t family) const;
  // Pages [first, + n) became free and may hold data (their pagemap tags say kPageFree).
  void OnFree(uintptr_t first, size_t n, uint64_t now);

  // A release pass: gives back the free pages of hugepages idle for decay_ns, whole
  // hugepages first, and subreleases partly used ones while the dirty free pages are
  // more than the slack allowed with `in_use_pages` handed out. Returns pages released.
  size_t ReleaseIdle(uint64_t now, uint64_t decay_ns, size_t in_use_pages);
  // Every dirty free page goes back now (malloc_trim). Returns pages released.
  size_t ReleaseAll();

  // Collapse (see SetHugepageCollapse): up to `max` hugepages of this heap that are
  // dense now and were at the call before, and not backed as hugepages; stores their
  // numbers in `out`. Marks the ones dense for the first time, for the next call. None
  // while the heap has less than kMinHeapForHugepages in use (`in_use_pages`).
  size_t CollapseCandidates(uintptr_t* out, size_t max, size_t in_use_pages);
  // MADV_COLLAPSE on hugepage h, a candidate, returned `error` (0: it is a hugepage now).
  void OnCollapsed(uintptr_t h, int error);
  // Whether dense hugepages are collapsed after the fact (this heap, once decided).
  bool collapses() const { return thp_ == kThpCollapse; }

  // Pages of the hugepage holding `page` that are in spans handed out.
  uint32_t Fullness(uintptr_t page) const;

  size_t dirty_pages() const { return dirty_pages_; }
  // Bytes of the heap the kernel has most likely backed with hugepages: hugepages in
  // use while transparent hugepages apply, not broken by a subrelease since.
  size_t hugepage_backed_bytes() const { return backed_ * kHugePageSize; }
  size_t released_total_pages() const { return released_total_; }
  size_t refaulted_total_pages() const { return refaulted_total_; }
  // Hugepages made hugepages by a collapse, over the run.
  size_t collapsed_total() const { return collapsed_total_; }
  // Whether the heap is placed for transparent hugepages (after the first Attach): it
  // asks for them, or has its dense hugepages collapsed.
  bool on_hugepages() const { return thp_ == kThpAdvise || thp_ == kThpCollapse; }

  // What a unit test checks: the record of the hugepage holding `page`.
  struct Record {
    uint64_t last_free_ns;
    uint64_t freed_now;     // groups (bits) with a page freed in decay epoch `epoch`
    uint64_t freed_before;  // and in the epoch before it
    uint32_t epoch;
    uint16_t used;
    uint16_t dirty;
    uint16_t released;  // free pages given back by a release pass since, not yet reused
    uint8_t owner;      // the filler that grew into it: its id (0: none yet)
    uint8_t flags;
    uint8_t family;  // of the spans in it (0: none in use)
  };
  static const Record* RecordOf(uintptr_t page);
  // What a unit test checks: whether the hugepage holding `page` is counted as backed by
  // a hugepage (hugepage_backed_bytes).
  static bool BackedByHugepage(uintptr_t page);

 private:
  Record* Own(uintptr_t hugepage);
  // Gives back the dirty free pages of the hugepage but those in groups of `keep`.
  size_t Release(uintptr_t hugepage, Record* r, uint64_t keep = 0);
  // Brings r's masks to the current epoch: what was freed two epochs ago is idle now.
  void Age(Record* r) const;
  // Starts a new decay epoch when one has passed since this one began.
  void AdvanceEpoch(uint64_t now, uint64_t decay_ns);
  size_t Subrelease(uint64_t now, uint64_t decay_ns, size_t need);
  void SetBacked(Record* r, bool backed);

  uint8_t id_ = 0;
  uint8_t thp_ = kThpUndecided;
  uintptr_t lowest_ = UINTPTR_MAX;  // hugepages this filler has grown into lie in
  uintptr_t highest_ = 0;           // [lowest_, highest_)
  size_t dirty_pages_ = 0;
  size_t backed_ = 0;
  size_t released_total_ = 0;
  size_t refaulted_total_ = 0;
  size_t collapsed_total_ = 0;
  uint32_t epoch_ = 1;  // records start at 0: nothing recent
  uint64_t epoch_start_ns_ = 0;
};

// The mode in force: JSMALLOC_HUGEPAGES, set at start-up before the heap grows.
void SetHugepageMode(HugepageMode mode);
HugepageMode CurrentHugepageMode();
// Whether, in mode kAuto where the system's THP mode is `madvise`, the heap's dense
// hugepages are moved onto hugepages after the fact (MADV_COLLAPSE, from the background
// thread), instead of staying on 4 KiB pages. Set at start-up with the mode.
void SetHugepageCollapse(bool on);
bool HugepageCollapseWanted();
// What a heap decides at its first growth, from the mode, the collapse setting and the
// system's THP mode, in words (for JSMALLOC_VERBOSE).
const char* HugepagePolicyText();

}  // namespace jsmalloc
