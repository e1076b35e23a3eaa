// The page heap's hugepage-aware parts (backend/hugepage_filler.h): the per-hugepage
// counts follow the pagemap exactly, idle whole hugepages go back first, partly used
// ones only past the slack, small spans go to the fullest hugepage, and one family of
// spans holds a hugepage. Each test uses a private page heap, so its hugepages are its
// own; release passes are given a time far past the decay instead of waiting for it.
#include <gtest/gtest.h>

#include <time.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <set>
#include <vector>

#include "backend/heap_region.h"
#include "backend/hugepage_filler.h"
#include "backend/page_heap.h"
#include "jsmalloc.h"
#include "options.h"
#include "os/sys.h"
#include "os/thp.h"
#include "os/vm.h"
#include "size_class.h"
#include "test_env.h"
#include "test_util.h"

namespace jsmalloc {
namespace {

constexpr size_t kHp = HugePageFiller::kPagesPerHugePage;

// Private heaps decide on hugepages at their first growth, from the mode then. The tests
// ask for them (JSMALLOC_HUGEPAGES=always) so that the hugepage paths run wherever the
// system lets them (its THP mode is not `never`); elsewhere they check the other paths.
struct AskForHugepages {
  HugepageMode saved = CurrentHugepageMode();
  AskForHugepages() { SetHugepageMode(HugepageMode::kAlways); }
  ~AskForHugepages() { SetHugepageMode(saved); }
};

// The counts of hugepage h as the pagemap says them.
struct Counted {
  uint32_t used = 0, dirty = 0, zero = 0;
};
Counted CountFromPagemap(uintptr_t h) {
  Counted c;
  for (uintptr_t p = h * kHp; p < (h + 1) * kHp; ++p) {
    uint8_t cls = HeapRegion::ClassAt(p);
    if (cls == kPageFree) {
      ++c.dirty;
    } else if (IsZeroPage(cls)) {
      ++c.zero;
    } else {
      ++c.used;
    }
  }
  return c;
}

void ExpectRecordsMatchPagemap(const std::set<uintptr_t>& hugepages) {
  for (uintptr_t h : hugepages) {
    const HugePageFiller::Record* r = HugePageFiller::RecordOf(h * kHp);
    ASSERT_NE(r, nullptr);
    Counted c = CountFromPagemap(h);
    EXPECT_EQ(r->used, c.used) << "hugepage " << h;
    EXPECT_EQ(r->dirty, c.dirty) << "hugepage " << h;
    EXPECT_EQ(c.used + c.dirty + c.zero, kHp);
  }
}

std::set<uintptr_t> HugePagesOf(const std::vector<Span*>& spans) {
  std::set<uintptr_t> out;
  for (Span* s : spans) {
    out.insert(s->first_page / kHp);
    out.insert(s->last_page() / kHp);
  }
  return out;
}

// Release passes as if made later: past the decay time, and past twice it (when even
// partly used hugepages give their idle free pages back).
uint64_t AfterDecay(const PageHeap& heap) {
  return PageHeap::Now() + heap.decay_ns() * 3 / 2;
}
uint64_t AfterTwiceTheDecay(const PageHeap& heap) {
  return PageHeap::Now() + heap.decay_ns() * 3;
}

TEST(HugePageFiller, CountsFollowThePagemap) {
  testing::EnsureAllocator();
  AskForHugepages ask;
  static constinit PageHeap heap;
  std::vector<Span*> spans;
  for (size_t n : {1, 8, 9, 16, 100, 300, 13, 520, 2}) {
    Span* s = heap.Allocate(n, 1, kPageLarge);
    ASSERT_NE(s, nullptr);
    spans.push_back(s);
  }
  std::set<uintptr_t> hps = HugePagesOf(spans);
  ExpectRecordsMatchPagemap(hps);
  for (size_t i = 0; i < spans.size(); i += 2) heap.Deallocate(spans[i]);
  ExpectRecordsMatchPagemap(hps);
  size_t dirty = 0;
  for (uintptr_t h : hps) dirty += CountFromPagemap(h).dirty;
  EXPECT_EQ(heap.GetStats().free_committed_bytes, dirty << kPageShift);
  heap.ReleaseAll();
  ExpectRecordsMatchPagemap(hps);
  EXPECT_EQ(heap.GetStats().free_committed_bytes, 0u);
  for (size_t i = 1; i < spans.size(); i += 2) heap.Deallocate(spans[i]);
  ExpectRecordsMatchPagemap(hps);
  heap.ReleaseAll();
}

// A pass gives back an idle hugepage with nothing in use whole; a partly used one keeps
// its free pages while they are within the slack (on hugepages), so it stays one.
TEST(HugePageFiller, WholeIdleHugePagesGoFirst) {
  testing::EnsureAllocator();
  AskForHugepages ask;
  static constinit PageHeap heap;
  // Two hugepages of 16-page blocks.
  std::vector<Span*> spans;
  for (size_t i = 0; i < 2 * kHp / 16; ++i) spans.push_back(heap.Allocate(16, 1, kPageLarge));
  const uintptr_t a = spans.front()->first_page / kHp;
  const uintptr_t b = spans.back()->first_page / kHp;
  ASSERT_EQ(b, a + 1);
  const size_t per = kHp / 16;
  for (size_t i = 0; i < per; ++i) heap.Deallocate(spans[i]);              // all of a
  for (size_t i = per; i < per + per / 2; ++i) heap.Deallocate(spans[i]);  // half of b
  EXPECT_EQ(HugePageFiller::RecordOf(a * kHp)->dirty, kHp);
  heap.ReleaseOldIfDue(AfterDecay(heap));
  EXPECT_EQ(HugePageFiller::RecordOf(a * kHp)->dirty, 0u) << "an idle empty hugepage stayed";
  EXPECT_EQ(CountFromPagemap(a).zero, kHp);
  const uint32_t b_dirty = HugePageFiller::RecordOf(b * kHp)->dirty;
  if (heap.filler().on_hugepages()) {
    EXPECT_EQ(b_dirty, kHp / 2) << "a partly used hugepage was broken up within the slack";
  } else {
    EXPECT_EQ(b_dirty, 0u) << "off hugepages every idle free page goes";
  }
  ExpectRecordsMatchPagemap({a, b});
  // Quiet for twice the decay time: the partly used one gives its free pages back too.
  heap.ReleaseOldIfDue(AfterTwiceTheDecay(heap));
  EXPECT_EQ(HugePageFiller::RecordOf(b * kHp)->dirty, 0u) << "a quiet heap kept free pages";
  ExpectRecordsMatchPagemap({a, b});
  for (size_t i = per + per / 2; i < spans.size(); ++i) heap.Deallocate(spans[i]);
  heap.ReleaseAll();
}

// Past the slack (16 MiB of dirty free pages at the least), partly used hugepages idle
// for the decay time give their free pages back, the emptiest first.
TEST(HugePageFiller, SubreleaseOnlyPastTheSlack) {
  testing::EnsureAllocator();
  AskForHugepages ask;
  static constinit PageHeap heap;
  constexpr size_t kHugePages = 24;  // 24 * 2 MiB = 48 MiB, a quarter to three in use
  std::vector<Span*> spans;
  for (size_t i = 0; i < kHugePages * kHp / 16; ++i)
    spans.push_back(heap.Allocate(16, 1, kPageLarge));
  const uintptr_t first = spans.front()->first_page / kHp;
  // Hugepage k keeps (k % 3 + 1) quarters in use.
  std::vector<Span*> kept;
  for (size_t i = 0; i < spans.size(); ++i) {
    const size_t k = i / (kHp / 16), in_hp = i % (kHp / 16);
    if (in_hp < (k % 3 + 1) * (kHp / 16) / 4) {
      kept.push_back(spans[i]);
    } else {
      heap.Deallocate(spans[i]);
    }
  }
  const size_t dirty_before = heap.GetStats().free_committed_bytes;
  ASSERT_GT(dirty_before, size_t{16} << 20);
  heap.ReleaseOldIfDue(AfterDecay(heap));
  const size_t dirty_after = heap.GetStats().free_committed_bytes;
  std::set<uintptr_t> hps;
  for (size_t k = 0; k < kHugePages; ++k) hps.insert(first + k);
  ExpectRecordsMatchPagemap(hps);
  if (!heap.filler().on_hugepages()) {
    EXPECT_EQ(dirty_after, 0u);
  } else {
    const size_t in_use = kept.size() * 16 * kPageSize;
    const size_t slack = std::max(size_t{16} << 20, in_use / 8);
    EXPECT_LE(dirty_after, slack) << "the pass left more than the slack";
    EXPECT_GT(dirty_after, slack - (kHp << kPageShift)) << "it released more than it needed";
    // The emptiest (a quarter in use) went first: none of the fullest was touched
    // while an emptier one kept dirty pages.
    bool emptier_left = false, fuller_released = false;
    for (size_t k = 0; k < kHugePages; ++k) {
      const HugePageFiller::Record* r = HugePageFiller::RecordOf((first + k) * kHp);
      if (k % 3 == 0 && r->dirty != 0) emptier_left = true;
      if (k % 3 == 2 && r->dirty != kHp / 4) fuller_released = true;
    }
    EXPECT_FALSE(emptier_left && fuller_released) << "a fuller hugepage went before an emptier";
  }
  for (Span* s : kept) heap.Deallocate(s);
  heap.ReleaseAll();
}

// On hugepages a small span goes to the fullest of the hugepages that have room, not to
// the first free span that fits (off them, to the first: the heap stays as compact).
TEST(HugePageFiller, SmallSpansGoToTheFullestHugePage) {
  testing::EnsureAllocator();
  AskForHugepages ask;
  static constinit PageHeap heap;
  // Hugepage x: 240 pages in use, a 16-page hole. Hugepage y: 220 in use, three holes of
  // 12 pages, which the free lists reach first for a 12-page span.
  Span* x_big = heap.Allocate(kHp - 16, 1, kPageLarge);
  Span* x_hole = heap.Allocate(16, 1, kPageLarge);
  Span* y_big = heap.Allocate(100, 1, kPageLarge);
  std::vector<Span*> holes, sep;
  for (int i = 0; i < 3; ++i) {
    holes.push_back(heap.Allocate(12, 1, kPageLarge));
    sep.push_back(heap.Allocate(4, 1, kPageLarge));
  }
  Span* y_rest = heap.Allocate(kHp - 100 - 48, 1, kPageLarge);
  ASSERT_TRUE(x_big && x_hole && y_big && y_rest);
  const uintptr_t x = x_big->first_page / kHp, y = y_big->first_page / kHp;
  ASSERT_EQ(x_hole->first_page / kHp, x);
  ASSERT_EQ(y_rest->last_page() / kHp, y);
  heap.Deallocate(x_hole);
  for (Span* h : holes) heap.Deallocate(h);
  ASSERT_EQ(HugePageFiller::RecordOf(x * kHp)->used, kHp - 16);
  ASSERT_EQ(HugePageFiller::RecordOf(y * kHp)->used, kHp - 36);
  Span* s = heap.Allocate(12, 1, kPageLarge);
  ASSERT_NE(s, nullptr);
  if (heap.filler().on_hugepages()) {
    EXPECT_EQ(s->first_page / kHp, x) << "went to the emptier hugepage";
  } else {
    EXPECT_EQ(s->first_page / kHp, y) << "off hugepages the first fit is taken";
  }
  for (Span* t : {s, x_big, y_big, y_rest}) heap.Deallocate(t);
  for (Span* t : sep) heap.Deallocate(t);
  heap.ReleaseAll();
}

// On hugepages, spans of two families (alignments 3 and 5, taken in turn) do not share a
// hugepage beyond its last pages: the gaps between them would be resident.
TEST(HugePageFiller, OneFamilyToAHugePage) {
  testing::EnsureAllocator();
  AskForHugepages ask;
  static constinit PageHeap heap;
  // A heap past the size where hugepages start (never touched: no memory).
  Span* big =
      heap.Allocate((HugePageFiller::kMinHeapForHugepages >> kPageShift) + kHp, 1, kPageLarge);
  ASSERT_NE(big, nullptr);
  std::map<size_t, std::vector<Span*>> by_family;  // alignment -> spans
  for (int i = 0; i < 200; ++i) {
    by_family[3].push_back(heap.Allocate(9, 3, 3));
    by_family[5].push_back(heap.Allocate(10, 5, 5));
  }
  std::map<uintptr_t, std::map<size_t, size_t>> pages;  // hugepage -> alignment -> pages
  for (auto& [family, spans] : by_family) {
    for (Span* s : spans) {
      ASSERT_NE(s, nullptr);
      for (uintptr_t p = s->first_page; p <= s->last_page(); ++p) pages[p / kHp][family]++;
    }
  }
  size_t free_pages = 0;
  for (auto& [h, families] : pages) {
    const Counted c = CountFromPagemap(h);
    free_pages += c.dirty + c.zero;
    if (heap.filler().on_hugepages() && families.size() > 1) {
      EXPECT_LE(std::min(families[3], families[5]), HugePageFiller::kMaxSmallSpanPages)
          << "hugepage " << h << " mixes families";
    }
  }
  if (heap.filler().on_hugepages()) {
    // A gap and a tail shorter than a span per hugepage, and each family's last one.
    EXPECT_LE(free_pages, pages.size() * 24 + 2 * kHp) << "gaps between families";
  }
  for (auto& [family, spans] : by_family) {
    for (Span* s : spans) heap.Deallocate(s);
  }
  heap.Deallocate(big);
  heap.ReleaseAll();
}

// The global heap's decay set to `ms` for one test, and its free memory given back
// first, so that the resident set starts from what the test itself holds.
struct ShortDecay {
  uint64_t saved = g_page_heap.decay_ns();
  explicit ShortDecay(uint64_t ms) {
    g_page_heap.set_decay_ns(ms * 1000 * 1000);
    js_release_free_memory();
  }
  ~ShortDecay() { g_page_heap.set_decay_ns(saved); }
  ShortDecay(const ShortDecay&) = delete;
  ShortDecay& operator=(const ShortDecay&) = delete;
};

// Issue 15's case, small: a burst of small objects of random sizes is freed, then the
// program stays lightly busy (a small, a mid-sized and a 2 MiB block every millisecond).
// The burst's memory goes back to the OS within a few decay times, and
// js_release_free_memory returns what is left.
TEST(MemoryBackToTheOs, SmallObjectsFreedUnderLightActivity) {
  testing::EnsureAllocator();
  ShortDecay decay(100);
  const size_t before = os::ResidentBytes();
  constexpr size_t kBurst = size_t{96} << 20;
  std::vector<void*> objs;
  uint32_t seed = 12345;
  for (size_t bytes = 0; bytes < kBurst;) {
    seed = seed * 1103515245u + 12345u;
    size_t size = 16 + (seed >> 8) % (4096 - 16 + 1);
    void* p = js_malloc(size);
    ASSERT_NE(p, nullptr);
    memset(p, 1, size);
    objs.push_back(p);
    bytes += size;
  }
  // Freed in a shuffled order: the spans empty at random times.
  for (size_t i = objs.size() - 1; i > 0; --i) {
    seed = seed * 1103515245u + 12345u;
    std::swap(objs[i], objs[(seed >> 4) % (i + 1)]);
  }
  const size_t peak = os::ResidentBytes();
  ASSERT_GT(peak, before + kBurst * 9 / 10);
  for (void* p : objs) js_free(p);
  const size_t goal = before + kBurst / 10;  // at most a tenth of the burst left
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  size_t rss = os::ResidentBytes();
  while (rss > goal && std::chrono::steady_clock::now() < deadline) {
    for (size_t size : {size_t{100}, size_t{70000}, size_t{2} << 20}) {
      void* p = js_malloc(size);
      ASSERT_NE(p, nullptr);
      static_cast<volatile char*>(p)[0] = 1;
      js_free(p);
    }
    struct timespec ms = {0, 1000 * 1000};
    nanosleep(&ms, nullptr);  // light activity: about one round a millisecond
    rss = os::ResidentBytes();
  }
  EXPECT_LE(rss, goal) << "resident " << (rss >> 20) << " MiB of a " << (kBurst >> 20)
                       << " MiB burst, " << (before >> 20) << " MiB before it";
  js_release_free_memory();
  EXPECT_LE(os::ResidentBytes(), before + kBurst / 20) << "js_release_free_memory kept it";
}

// After a spike, a server keeps replacing some of its blocks. The heap is laid out in
// units of a hole (a 64-page block of the spike, freed), a long-lived block, a block
// that is replaced over and over, and another long-lived block: the holes are too far
// from the replaced blocks to merge with them, each replacement takes the exact free
// span its block left, so nothing takes the holes, and every hugepage keeps freeing
// pages, as fast as the loop runs, so none is ever idle for the decay time. The holes go back
// within a few decay times all the same (on hugepages, down to the slack the heap keeps).
TEST(MemoryBackToTheOs, HolesInABusyHeapGoBack) {
  testing::EnsureAllocator();
  ShortDecay decay(50);
  const size_t before = os::ResidentBytes();
  // Sizes in pages, a little under so that no block takes a page more for its tail.
  const auto bytes = [](size_t pages) { return pages * kPageSize - 64; };
  const size_t kHole = bytes(64), kKept = bytes(17), kReplaced = bytes(20);
  constexpr size_t kUnits = 96;  // 88 MiB of 8 KiB pages, 48 of them holes
  std::vector<void*> holes, kept, replaced;
  for (size_t i = 0; i < kUnits; ++i) {
    for (auto [list, size] :
         {std::pair{&holes, kHole}, {&kept, kKept}, {&replaced, kReplaced}, {&kept, kKept}}) {
      void* p = js_malloc(size);
      ASSERT_NE(p, nullptr);
      memset(p, 1, size);
      list->push_back(p);
    }
  }
  for (void* p : holes) js_free(p);
  const size_t live_bytes = kUnits * (2 * kKept + kReplaced);
  ASSERT_GT(os::ResidentBytes(), before + live_bytes + kUnits * kHole * 9 / 10);
  const size_t slack = g_page_heap.filler().on_hugepages() ? size_t{16} << 20 : 0;
  const size_t goal = before + live_bytes + slack + (size_t{8} << 20);
  uint32_t seed = 4321;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  size_t rss = os::ResidentBytes(), rounds = 0;
  while (rss > goal && std::chrono::steady_clock::now() < deadline) {
    for (int k = 0; k < 100; ++k, ++rounds) {
      seed = seed * 1103515245u + 12345u;
      void*& slot = replaced[(seed >> 8) % replaced.size()];
      js_free(slot);
      slot = js_malloc(kReplaced);
      ASSERT_NE(slot, nullptr);
      static_cast<volatile char*>(slot)[0] = 2;
    }
    rss = os::ResidentBytes();
  }
  EXPECT_LE(rss, goal) << "resident " << (rss >> 20) << " MiB with " << (live_bytes >> 20)
                       << " MiB live after " << rounds << " replacements, " << (before >> 20)
                       << " MiB before the spike";
  for (auto* list : {&kept, &replaced}) {
    for (void* p : *list) js_free(p);
  }
  js_release_free_memory();
}

using jstest::AnonHugePageBytes;

// `bytes` of 16-page spans of class 1 from `heap`, every byte written; fewer if the heap
// runs out.
std::vector<Span*> WriteDenseSpans(PageHeap& heap, size_t bytes) {
  std::vector<Span*> spans;
  for (size_t done = 0; done < bytes; done += 16 * kPageSize) {
    Span* s = heap.Allocate(16, 1, 1);
    if (s == nullptr) break;
    memset(HeapRegion::AddressOf(s->first_page), 1, 16 * kPageSize);
    spans.push_back(s);
  }
  return spans;
}

// The heap's own count of bytes on hugepages agrees with the kernel's: spans of small
// classes written densely, in a heap past kMinHeapForHugepages, are backed by hugepages
// where the system lets them be, and counted as such; given back, they are not.
TEST(HugePageFiller, CoverageMatchesTheKernel) {
  testing::EnsureAllocator();
  AskForHugepages ask;
  static constinit PageHeap heap;
  // Past the size where hugepages start (never touched: no memory).
  Span* big = heap.Allocate(HugePageFiller::kMinHeapForHugepages >> kPageShift, 1, kPageLarge);
  ASSERT_NE(big, nullptr);
  const size_t kernel_before = AnonHugePageBytes();
  constexpr size_t kDense = size_t{64} << 20;
  std::vector<Span*> spans = WriteDenseSpans(heap, kDense);
  ASSERT_EQ(spans.size(), kDense / (16 * kPageSize));
  const size_t counted = heap.filler().hugepage_backed_bytes();
  const size_t kernel = AnonHugePageBytes() - kernel_before;
  if (heap.filler().on_hugepages()) {
    EXPECT_GE(counted, kDense - (size_t{4} << 20)) << "dense hugepages not counted";
    EXPECT_LE(counted, kDense + (size_t{4} << 20));
    EXPECT_GE(kernel, counted * 8 / 10) << "the heap counts more than the kernel backs";
    EXPECT_LE(kernel, counted + (size_t{4} << 20)) << "the kernel backs more than counted";
  } else {
    EXPECT_EQ(counted, 0u);
  }
  for (Span* s : spans) heap.Deallocate(s);
  heap.ReleaseAll();
  EXPECT_EQ(heap.filler().hugepage_backed_bytes(), 0u) << "hugepages given back still counted";
  EXPECT_LE(AnonHugePageBytes(), kernel_before + (size_t{2} << 20));
  heap.Deallocate(big);
  heap.ReleaseAll();
}

// The default in `madvise` mode with the background thread: the heap faults in 4 KiB
// pages, and its dense hugepages are collapsed later (CollapseDense, the background
// thread's call), counted as hugepages as the kernel backs them. A hugepage must be
// dense at two passes in a row with nothing freed in it between them; given back, it
// is no longer counted.
struct CollapseInAutoMode {
  HugepageMode saved_mode = CurrentHugepageMode();
  bool saved_collapse = HugepageCollapseWanted();
  CollapseInAutoMode() {
    SetHugepageMode(HugepageMode::kAuto);
    SetHugepageCollapse(true);
  }
  ~CollapseInAutoMode() {
    SetHugepageMode(saved_mode);
    SetHugepageCollapse(saved_collapse);
  }
};

TEST(HugePageFiller, DenseHugePagesAreCollapsedAfterTwoPasses) {
  testing::EnsureAllocator();
  CollapseInAutoMode collapse;
  static constinit PageHeap heap;
  Span* big = heap.Allocate(HugePageFiller::kMinHeapForHugepages >> kPageShift, 1, kPageLarge);
  ASSERT_NE(big, nullptr);
  const bool madvise_mode = os::TransparentHugepageSetting() == os::ThpSetting::kMadvise;
  EXPECT_EQ(heap.filler().collapses(), madvise_mode);
  const size_t kernel_before = AnonHugePageBytes();
  constexpr size_t kDense = size_t{32} << 20;
  std::vector<Span*> spans = WriteDenseSpans(heap, kDense);
  ASSERT_EQ(spans.size(), kDense / (16 * kPageSize));
  std::set<uintptr_t> hps = HugePagesOf(spans);
  // One span freed in the first hugepage after the first pass: it is not dense twice.
  EXPECT_EQ(heap.CollapseDense(64), 0u) << "collapsed at the first sight of density";
  const uintptr_t first_hp = spans.front()->first_page / kHp;
  heap.Deallocate(spans.front());
  const size_t collapsed = heap.CollapseDense(64);
  const size_t counted = heap.filler().hugepage_backed_bytes();
  const size_t kernel = AnonHugePageBytes() - kernel_before;
  if (heap.filler().collapses()) {
    // Every whole hugepage of the dense part but the one with a span freed.
    EXPECT_GE(collapsed, kDense / kHugePageSize - 3);
    EXPECT_LE(collapsed, kDense / kHugePageSize - 1)
        << "a hugepage with a page freed since the last pass was collapsed";
    EXPECT_EQ(counted, collapsed * kHugePageSize);
    EXPECT_GE(kernel, counted) << "counted as hugepages but not backed so";
    EXPECT_LE(kernel, counted + (size_t{2} << 20)) << "the kernel backs more than counted";
    // Still dense (15 of 16 spans in use): seen so at the second pass, it goes at the
    // third, and none of the others is copied again.
    EXPECT_EQ(heap.CollapseDense(64), 1u) << "hugepage " << first_hp << " not collapsed";
    EXPECT_EQ(heap.CollapseDense(64), 0u) << "a collapsed hugepage was collapsed again";
    EXPECT_EQ(heap.filler().hugepage_backed_bytes(), counted + kHugePageSize);
  } else {
    // Not `madvise` mode, or a kernel without MADV_COLLAPSE: nothing to count.
    EXPECT_EQ(collapsed, 0u);
  }
  ExpectRecordsMatchPagemap(hps);
  for (size_t i = 1; i < spans.size(); ++i) heap.Deallocate(spans[i]);
  heap.ReleaseAll();
  EXPECT_EQ(heap.filler().hugepage_backed_bytes(), 0u) << "hugepages given back still counted";
  EXPECT_LE(AnonHugePageBytes(), kernel_before + (size_t{2} << 20));
  heap.Deallocate(big);
  heap.ReleaseAll();
}

// A hugepage the kernel cannot collapse as it is mapped (a page of it PROT_NONE, as
// the secure library's guard pages and closed blocks are, splits the heap's mapping)
// answers EINVAL, as a kernel without MADV_COLLAPSE does for every range. The other
// dense hugepages are still collapsed, and that one again once its spans change.
TEST(HugePageFiller, AHugepageSplitByAGuardPageDoesNotStopTheCollapses) {
  testing::EnsureAllocator();
  CollapseInAutoMode collapse;
  static constinit PageHeap heap;
  Span* big = heap.Allocate(HugePageFiller::kMinHeapForHugepages >> kPageShift, 1, kPageLarge);
  ASSERT_NE(big, nullptr);
  const bool can =
      os::TransparentHugepageSetting() == os::ThpSetting::kMadvise && os::CollapseSupported();
  constexpr size_t kDense = size_t{16} << 20;
  std::vector<Span*> spans = WriteDenseSpans(heap, kDense);
  ASSERT_EQ(spans.size(), kDense / (16 * kPageSize));
  // The lowest hugepage all in dense spans: the first a pass tries.
  uintptr_t split_hp = 0;
  for (uintptr_t hp : HugePagesOf(spans)) {
    if (hp * kHp >= spans.front()->first_page) {
      split_hp = hp;
      break;
    }
  }
  ASSERT_NE(split_hp, 0u);
  const uintptr_t guard_page = split_hp * kHp + 7;
  void* guard = HeapRegion::AddressOf(guard_page);
  ASSERT_TRUE(os::Protect(guard, kPageSize, false));
  EXPECT_EQ(heap.CollapseDense(64), 0u) << "collapsed at the first sight of density";
  const size_t collapsed = heap.CollapseDense(64);
  if (can) {
    EXPECT_TRUE(heap.filler().collapses()) << "one split hugepage stopped every collapse";
    EXPECT_GE(collapsed, kDense / kHugePageSize - 3) << "the others were not collapsed";
    EXPECT_EQ(heap.filler().hugepage_backed_bytes(), collapsed * kHugePageSize);
  } else {
    EXPECT_EQ(collapsed, 0u);
  }
  EXPECT_EQ(heap.CollapseDense(64), 0u) << "a hugepage was collapsed twice";
  // Whole again, and a span of it freed (it stays dense): tried and collapsed two
  // passes on, as any hugepage whose spans changed.
  ASSERT_TRUE(os::Protect(guard, kPageSize, true));
  size_t at = 0;
  while (at < spans.size() && spans[at]->first_page + 16 <= guard_page) ++at;
  ASSERT_LT(at, spans.size());
  heap.Deallocate(spans[at]);
  spans.erase(spans.begin() + static_cast<std::ptrdiff_t>(at));
  // Counted by the split hugepage alone: another that the kernel had no free hugepage
  // for at the second pass (EAGAIN) is retried two passes on, which is now (the heap
  // tests ran beside others under `ctest -j2` when that happened).
  heap.CollapseDense(64);
  EXPECT_FALSE(HugePageFiller::BackedByHugepage(split_hp * kHp))
      << "hugepage " << split_hp << " collapsed at the first sight of density";
  // Retried the pass after; the kernel too may have no free hugepage just then, and the
  // heap asks again every two passes.
  bool retried = false;
  for (int pass = 0; pass < 8 && !retried; ++pass) {
    heap.CollapseDense(64);
    retried = HugePageFiller::BackedByHugepage(split_hp * kHp);
  }
  EXPECT_EQ(retried, can) << "hugepage " << split_hp << " not retried";
  for (Span* s : spans) heap.Deallocate(s);
  heap.ReleaseAll();
  EXPECT_EQ(heap.filler().hugepage_backed_bytes(), 0u);
  heap.Deallocate(big);
  heap.ReleaseAll();
}

// The partitions' masks follow the filler: a sub-region with pages in use is committed;
// freed, it is committed and pending release; given back, neither.
TEST(HugePageFiller, PartitionMasksFollowThePages) {
  testing::EnsureAllocator();
  static constinit PageHeap heap;
  const size_t sub = g_region.sub_region_size();
  ASSERT_GE(sub, kHugePageSize);
  Span* block = heap.Allocate(3 * (sub >> kPageShift), 1, kPageLarge);
  ASSERT_NE(block, nullptr);
  const uintptr_t begin = block->first_page << kPageShift;
  const uintptr_t whole = RoundUp(begin, sub);  // a sub-region inside the block
  ASSERT_LE(whole + sub, begin + (size_t{block->npages} << kPageShift));
  const size_t part = whole / g_region.partition_size();
  const uint64_t bit = uint64_t{1} << ((whole % g_region.partition_size()) / sub);
  EXPECT_NE(g_region.partition_mask(part) & bit, 0u);
  EXPECT_NE(g_region.committed_mask(part) & bit, 0u) << "in use but not committed";
  EXPECT_EQ(g_region.pending_mask(part) & bit, 0u);
  heap.Deallocate(block);
  EXPECT_NE(g_region.committed_mask(part) & bit, 0u) << "freed pages may still be resident";
  EXPECT_NE(g_region.pending_mask(part) & bit, 0u) << "freed but not pending release";
  heap.ReleaseAll();
  EXPECT_EQ(g_region.committed_mask(part) & bit, 0u) << "given back but still committed";
  EXPECT_EQ(g_region.pending_mask(part) & bit, 0u);
  EXPECT_NE(g_region.partition_mask(part) & bit, 0u) << "the heap still spans it";
}

TEST(HugePageFiller, HugepagesOptionTakesWords) {
  int64_t saved = g_option_values[static_cast<int>(Option::kHugepages)];
  setenv("JSMALLOC_HUGEPAGES", "never", 1);
  LoadOptions();
  EXPECT_EQ(GetOption(Option::kHugepages), static_cast<int64_t>(HugepageMode::kNever));
  setenv("JSMALLOC_HUGEPAGES", "always", 1);
  LoadOptions();
  EXPECT_EQ(GetOption(Option::kHugepages), static_cast<int64_t>(HugepageMode::kAlways));
  // A bad value is reported by name and leaves the option as it was.
  setenv("JSMALLOC_HUGEPAGES", "sometimes", 1);
  ::testing::internal::CaptureStderr();
  LoadOptions();
  std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(GetOption(Option::kHugepages), static_cast<int64_t>(HugepageMode::kAlways));
  EXPECT_NE(err.find("JSMALLOC_HUGEPAGES=sometimes"), std::string::npos) << err;
  EXPECT_NE(err.find("auto|always|never"), std::string::npos) << err;
  unsetenv("JSMALLOC_HUGEPAGES");
  g_option_values[static_cast<int>(Option::kHugepages)] = saved;
}

}  // namespace
}  // namespace jsmalloc
