#include "backend/page_heap.h"

#include <gtest/gtest.h>

#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "backend/heap_region.h"
#include "backend/meta_arena.h"
#include "size_class.h"
#include "test_env.h"
#include "test_util.h"

namespace jsmalloc {

extern RecordPool<Span> g_span_pool;

namespace {

TEST(PageHeap, AllocateHonoursSizeAndAlignment) {
  testing::EnsureAllocator();
  std::vector<Span*> spans;
  for (size_t align : {1, 3, 7, 8, 15, 64, 256}) {
    for (size_t n : {1, 2, 9, 130, 600}) {
      Span* s = g_page_heap.Allocate(n, align, kPageLarge);
      ASSERT_NE(s, nullptr);
      EXPECT_EQ(s->npages, n);
      EXPECT_EQ(s->first_page % align, 0u);
      EXPECT_EQ(s->state, Span::State::kLarge);
      spans.push_back(s);
    }
  }
  // No two spans overlap.
  std::sort(spans.begin(), spans.end(),
            [](Span* a, Span* b) { return a->first_page < b->first_page; });
  for (size_t i = 1; i < spans.size(); ++i) {
    EXPECT_GT(spans[i]->first_page, spans[i - 1]->last_page());
  }
  for (Span* s : spans) g_page_heap.Deallocate(s);
}

TEST(PageHeap, FreedNeighboursCoalesce) {
  testing::EnsureAllocator();
  // A private page heap: its spans come from fresh pages, so placement is predictable.
  static constinit PageHeap heap;
  Span* x = heap.Allocate(10, 1, kPageLarge);
  Span* y = heap.Allocate(20, 1, kPageLarge);
  Span* z = heap.Allocate(30, 1, kPageLarge);
  ASSERT_TRUE(x && y && z);
  uintptr_t base = x->first_page;
  ASSERT_EQ(y->first_page, base + 10);
  ASSERT_EQ(z->first_page, base + 30);
  heap.Deallocate(x);
  heap.Deallocate(z);
  EXPECT_EQ(heap.GetStats().free_spans, 2u);  // x alone; z merged with the rest
  heap.Deallocate(y);  // joins x on the left and z (and the rest) on the right
  EXPECT_EQ(heap.GetStats().free_spans, 1u);
  Span* merged = HeapRegion::SpanAt(base);
  EXPECT_EQ(merged->state, Span::State::kFree);
  EXPECT_EQ(merged->first_page, base);
  EXPECT_GE(merged->npages, 60u);
  EXPECT_EQ(HeapRegion::SpanAt(merged->last_page()), merged);
  // And the whole area can be taken again in one piece.
  Span* again = heap.Allocate(60, 1, kPageLarge);
  EXPECT_EQ(again->first_page, base);
  heap.Deallocate(again);
}

// Off hugepages, a block of the exact bins goes in the lower of the first two free
// spans that hold it (the best fit and the next), not always in the best fit. (On them
// the fullest hugepage decides, and these spans share one: the best fit.)
TEST(PageHeap, SmallSpansTakeTheLowerOfTwoFits) {
  testing::EnsureAllocator();
  static constinit PageHeap heap;  // private and small: its spans share a hugepage
  Span* low = heap.Allocate(12, 1, kPageLarge);
  Span* wall1 = heap.Allocate(1, 1, kPageLarge);
  Span* mid = heap.Allocate(10, 1, kPageLarge);
  Span* wall2 = heap.Allocate(1, 1, kPageLarge);
  Span* high = heap.Allocate(8, 1, kPageLarge);
  Span* wall3 = heap.Allocate(1, 1, kPageLarge);
  ASSERT_TRUE(low && wall1 && mid && wall2 && high && wall3);
  const uintptr_t low_first = low->first_page, mid_first = mid->first_page;
  const uintptr_t high_first = high->first_page;
  ASSERT_LT(mid_first, high_first);
  const bool compact = !heap.filler().on_hugepages();
  for (Span* x : {low, mid, high}) heap.Deallocate(x);
  // Fits, best first: high (8 pages), mid (10), low (12).
  Span* s = heap.Allocate(8, 1, kPageLarge);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->first_page, compact ? mid_first : high_first);
  // Off hugepages now high (8), mid's rest (2: too small), low (12): the lower of high
  // and low. On them mid (10), low (12): mid.
  Span* t = heap.Allocate(8, 1, kPageLarge);
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->first_page, compact ? low_first : mid_first);
  for (Span* x : {s, t, wall1, wall2, wall3}) heap.Deallocate(x);
}

// A block larger than the exact bins goes in the lowest free span that holds it, not
// the smallest: with best fit, bench-large's blocks spread over the heap (peak RSS
// 122.3 MiB against 108.4 MiB).
TEST(PageHeap, BigSpansGoLowestInTheHeap) {
  testing::EnsureAllocator();
  static constinit PageHeap heap;  // private, as above: placement is predictable
  Span* low = heap.Allocate(400, 1, kPageLarge);
  Span* wall1 = heap.Allocate(1, 1, kPageLarge);
  Span* high = heap.Allocate(200, 1, kPageLarge);
  Span* wall2 = heap.Allocate(1, 1, kPageLarge);
  ASSERT_TRUE(low && wall1 && high && wall2);
  const uintptr_t low_first = low->first_page, high_first = high->first_page;
  ASSERT_LT(low_first, high_first);
  heap.Deallocate(low);
  heap.Deallocate(high);
  // Both holes (and whatever follows wall2) fit 150 pages; the 200-page hole fits best.
  Span* s = heap.Allocate(150, 1, kPageLarge);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->first_page, low_first);
  // What is left of the low hole (250 pages) is still lower than the better fit.
  Span* t = heap.Allocate(180, 1, kPageLarge);
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->first_page, low_first + 150);
  for (Span* x : {s, t, wall1, wall2}) heap.Deallocate(x);
}

TEST(PageHeap, ExtendAndShrinkInPlace) {
  testing::EnsureAllocator();
  static constinit PageHeap heap;
  Span* s = heap.Allocate(4, 1, kPageLarge);
  ASSERT_NE(s, nullptr);
  uintptr_t first = s->first_page;
  ASSERT_TRUE(heap.TryExtend(s, 40));
  EXPECT_EQ(s->first_page, first);
  EXPECT_EQ(s->npages, 40u);
  EXPECT_EQ(HeapRegion::ClassAt(first + 39), kPageLarge);
  heap.Shrink(s, 8);
  EXPECT_EQ(s->npages, 8u);
  EXPECT_EQ(HeapRegion::ClassAt(first + 8), kPageFree);
  // A neighbour in use stops growth in place.
  Span* blocker = heap.Allocate(1, 1, kPageLarge);
  ASSERT_EQ(blocker->first_page, first + 8);
  EXPECT_FALSE(heap.TryExtend(s, 9));
  EXPECT_EQ(s->npages, 8u);
  heap.Deallocate(s);
  heap.Deallocate(blocker);
  EXPECT_EQ(heap.GetStats().large_bytes, 0u);
}

size_t FreePageBytes(PageHeap& heap) {
  const PageHeap::Stats st = heap.GetStats();
  return st.free_committed_bytes + st.free_released_bytes;
}

// Span records run out (the OS maps the metadata arena no more memory: RLIMIT_AS lowered
// below what the process maps). An aligned allocation that has to cut the front off a
// free span fails then with nothing lost: the span stays free, on its list, and serves
// the same allocation once records come back. Carve used to drop it: its pages were lost
// to the heap, still marked free, and the next coalesce beside them would unlink a span
// on no list.
void AlignedCarveWithoutSpanRecords() {
  static constinit PageHeap heap;
  // A free span between two in use, its first page one past a 16-page boundary.
  Span* a = heap.Allocate(1, 1, kPageLarge);
  Span* b = heap.Allocate(64, 1, kPageLarge);
  Span* c = heap.Allocate(1, 1, kPageLarge);
  if (a == nullptr || b == nullptr || c == nullptr) jstest::ExitFailing("no spans to start with");
  if (b->first_page != a->first_page + 1 || b->first_page % 16 != 1)
    jstest::ExitFailing("the spans are not laid out as the test needs");
  heap.Deallocate(b);
  const size_t free_before = FreePageBytes(heap);
  static Span* held[1 << 20];
  size_t n = 0;
  struct rlimit saved;
  if (getrlimit(RLIMIT_AS, &saved) != 0) jstest::ExitFailing("getrlimit");
  // The first refusal makes the heap give back its reservation past the frontier
  // (os::Reserve's retry), after which the limit is set again, to what is left.
  for (int round = 0; round < 2; ++round) {
    struct rlimit rl = saved;
    rl.rlim_cur = jstest::VmBytes();
    if (setrlimit(RLIMIT_AS, &rl) != 0) jstest::ExitFailing("setrlimit");
    const size_t stop = (round + 1) * (sizeof(held) / sizeof(held[0]) / 2);
    while (n < stop && (held[n] = g_span_pool.New()) != nullptr) ++n;
  }
  if (n == sizeof(held) / sizeof(held[0])) jstest::ExitFailing("the span records never ran out");
  if (heap.Allocate(4, 16, kPageLarge) != nullptr)
    jstest::ExitFailing("a span was carved without a record");
  if (FreePageBytes(heap) != free_before) jstest::ExitFailing("a failed carve lost free pages");
  for (size_t i = 0; i < n; ++i) g_span_pool.Delete(held[i]);
  if (setrlimit(RLIMIT_AS, &saved) != 0) jstest::ExitFailing("setrlimit back");
  Span* d = heap.Allocate(4, 16, kPageLarge);
  if (d == nullptr || d->first_page < a->first_page || d->first_page > c->first_page)
    jstest::ExitFailing("the free span between the two was not used");
  heap.Deallocate(d);
  heap.Deallocate(a);
  heap.Deallocate(c);
  if (heap.GetStats().large_bytes != 0) jstest::ExitFailing("pages still counted in use");
  _exit(0);
}

TEST(PageHeap, AlignedCarveWithoutSpanRecordsLosesNothing) {
  testing::EnsureAllocator();
  EXPECT_EXIT(AlignedCarveWithoutSpanRecords(), ::testing::ExitedWithCode(0), "");
}

TEST(PageHeap, ReleaseAllReturnsFreePages) {
  testing::EnsureAllocator();
  Span* s = g_page_heap.Allocate(64, 1, kPageLarge);
  ASSERT_NE(s, nullptr);
  memset(HeapRegion::AddressOf(s->first_page), 1, 64 * kPageSize);
  g_page_heap.Deallocate(s);
  EXPECT_GT(g_page_heap.GetStats().free_committed_bytes, 0u);
  EXPECT_GE(g_page_heap.ReleaseAll(), 64 * kPageSize);
  EXPECT_EQ(g_page_heap.GetStats().free_committed_bytes, 0u);
  // Released pages read as zero and are reported as such to calloc.
  Span* t = g_page_heap.Allocate(64, 1, kPageLarge);
  EXPECT_FALSE(t->committed);
  g_page_heap.Deallocate(t);
}

// A span carved from a free span that merged used pages with fresh ones knows which of
// its pages read as zero (those are the ones worth faulting in ahead), and a span
// given back to the OS reads as zero again.
TEST(PageHeap, KnowsWhichPagesReadAsZero) {
  testing::EnsureAllocator();
  static constinit PageHeap heap;
  Span* a = heap.Allocate(4, 1, kPageLarge);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->zero_pages, 0xFu);
  EXPECT_FALSE(a->committed);
  const uintptr_t base = a->first_page;
  memset(HeapRegion::AddressOf(base), 1, 4 * kPageSize);
  heap.Deallocate(a);  // merges with the fresh pages after it
  EXPECT_EQ(heap.GetStats().free_spans, 1u);
  Span* b = heap.Allocate(10, 1, 5);
  ASSERT_EQ(b->first_page, base);
  EXPECT_EQ(b->zero_pages, 0x3F0u);  // pages 4..9 were never used
  EXPECT_TRUE(b->committed);         // pages 0..3 hold old data
  heap.Deallocate(b);
  heap.ReleaseAll();
  EXPECT_TRUE(IsFreePage(HeapRegion::ClassAt(base)));
  Span* c = heap.Allocate(10, 1, 5);
  ASSERT_EQ(c->first_page, base);
  EXPECT_EQ(c->zero_pages, 0x3FFu);
  EXPECT_FALSE(c->committed);
  heap.Deallocate(c);
}

#if defined(JSMALLOC_SECURE)
constexpr bool kFreedLargePagesClosed = true;
#else
constexpr bool kFreedLargePagesClosed = false;
#endif

void Fill(const Span* s, int byte) {
  memset(HeapRegion::AddressOf(s->first_page), byte, size_t{s->npages} << kPageShift);
}

// A write to `page` faults where the library closes freed large blocks' pages (the secure
// one) and succeeds in the default one.
void ExpectWriteFaultsWhereFreedPagesClose(void* page) {
  volatile char* byte = static_cast<volatile char*>(page);
  if (kFreedLargePagesClosed) {
    EXPECT_EXIT(*byte = 2, ::testing::KilledBySignal(SIGSEGV), "");
  } else {
    EXPECT_EXIT((*byte = 2, std::exit(0)), ::testing::ExitedWithCode(0), "");
  }
}

// The secure library closes a freed large block's pages (PROT_NONE) and opens them again
// for whatever span is carved over them: a small span, a large one over closed and open
// pages together, a large block grown into them. The default library leaves them open.
TEST(PageHeapDeathTest, FreedLargePagesAreClosedUntilHandedOutAgain) {
  testing::EnsureAllocator();
  static constinit PageHeap heap;
  Span* large = heap.Allocate(40, 1, kPageLarge);
  Span* after = heap.Allocate(4, 1, kPageLarge);  // keeps the freed block's end in place
  ASSERT_TRUE(large && after);
  const uintptr_t base = large->first_page;
  Fill(large, 1);
  heap.Deallocate(large);
  ExpectWriteFaultsWhereFreedPagesClose(HeapRegion::AddressOf(base + 20));
  // A small span carved from the closed pages: open, writable to its last byte.
  Span* small = heap.Allocate(8, 1, 5);
  ASSERT_NE(small, nullptr);
  EXPECT_EQ(small->first_page, base);
  Fill(small, 3);
  // Given back it stays open, and merges with the closed pages after it; a large span
  // over both opens all of its pages.
  heap.Deallocate(small);
  Span* mixed = heap.Allocate(16, 1, kPageLarge);
  ASSERT_NE(mixed, nullptr);
  EXPECT_EQ(mixed->first_page, base);
  // Grown in place over closed pages: open too.
  Span* grown = heap.Allocate(2, 1, kPageLarge);
  ASSERT_NE(grown, nullptr);
  EXPECT_EQ(grown->first_page, base + 16);
  ASSERT_TRUE(heap.TryExtend(grown, 20));
  Fill(mixed, 4);
  Fill(grown, 4);
  for (Span* s : {mixed, grown, after}) heap.Deallocate(s);
}

// A guarded block (the secure library's large block and its guard page) taken from pages
// that were all closed keeps its last page closed, and says so: the guard costs no
// mprotect of its own. Taken over open pages too, it opens every page and says not.
TEST(PageHeapDeathTest, GuardedBlockFromClosedPagesKeepsItsLastPageClosed) {
  testing::EnsureAllocator();
  static constinit PageHeap heap;
  Span* large = heap.Allocate(40, 1, kPageLarge);
  Span* after = heap.Allocate(4, 1, kPageLarge);
  ASSERT_TRUE(large && after);
  const uintptr_t base = large->first_page;
  heap.Deallocate(large);
  bool last_closed = !kFreedLargePagesClosed;
  Span* guarded = heap.Allocate(10, 1, kPageLarge, &last_closed);
  ASSERT_NE(guarded, nullptr);
  EXPECT_EQ(guarded->first_page, base);
  EXPECT_EQ(last_closed, kFreedLargePagesClosed);
  memset(HeapRegion::AddressOf(base), 5, size_t{9} << kPageShift);  // the body is open
  ExpectWriteFaultsWhereFreedPagesClose(HeapRegion::AddressOf(base + 9));
  heap.Deallocate(guarded);
  // A small span's pages, open when it is given back, merge with the closed ones beside
  // them: a guarded block over both opens all of its pages.
  Span* small = heap.Allocate(8, 1, 5);
  ASSERT_NE(small, nullptr);
  EXPECT_EQ(small->first_page, base);
  heap.Deallocate(small);
  last_closed = true;
  Span* mixed = heap.Allocate(16, 1, kPageLarge, &last_closed);
  ASSERT_NE(mixed, nullptr);
  EXPECT_EQ(mixed->first_page, base);
  EXPECT_FALSE(last_closed);
  Fill(mixed, 4);
  // Without the question, a span from closed pages is open to its last byte.
  Span* plain = heap.Allocate(10, 1, kPageLarge);
  ASSERT_NE(plain, nullptr);
  EXPECT_EQ(plain->first_page, base + 16);
  Fill(plain, 6);
  for (Span* s : {mixed, plain, after}) heap.Deallocate(s);
}

// The kernel's limit on a process's mappings (vm.max_map_count), 0 if unknown.
size_t MappingLimit() {
  FILE* f = fopen("/proc/sys/vm/max_map_count", "r");
  if (f == nullptr) return 0;
  size_t limit = 0;
  if (fscanf(f, "%zu", &limit) != 1) limit = 0;
  fclose(f);
  return limit;
}

// Maps one-page mappings of alternating protection, which cannot merge, until the kernel
// refuses another (at its limit of `limit` mappings). Returns them, for munmap.
std::vector<void*> FillMappings(size_t limit) {
  std::vector<void*> maps;
  maps.reserve(limit);  // nothing may need a mapping once they are full
  while (maps.size() < maps.capacity()) {
    void* m = mmap(nullptr, 4096, maps.size() % 2 == 0 ? PROT_NONE : PROT_READ,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) break;
    maps.push_back(m);
  }
  return maps;
}

// At the kernel's limit on mappings the secure library cannot open closed pages where
// that splits a mapping. A span handed out over them fails (nullptr) and a large block
// grown into them (its last page a guard, closed) stays as it was; the pages are not
// lost: once mappings are given back, both succeed and every page taken is writable.
// The default library changes no protection: both succeed at the limit. In a child
// process: the limit is the whole process's.
TEST(PageHeapDeathTest, AtTheMappingLimitClosedPagesAreNotLost) {
  testing::EnsureAllocator();
  const size_t limit = MappingLimit();
  if (limit == 0 || limit > (size_t{1} << 22))
    GTEST_SKIP() << "vm.max_map_count is " << limit << ": too many mappings to fill";
  static constinit PageHeap heap;
  // The freed span starts on an odd page, so that a span aligned at 2 starts inside it.
  Span* block = heap.Allocate(4, 1, kPageLarge);
  ASSERT_NE(block, nullptr);
  if (block->first_page % 2 == 0) {
    heap.Deallocate(block);
    block = heap.Allocate(5, 1, kPageLarge);
    ASSERT_NE(block, nullptr);
  }
  const uint32_t n0 = block->npages;
  Span* freed = heap.Allocate(40, 1, kPageLarge);
  Span* after = heap.Allocate(4, 1, kPageLarge);
  ASSERT_TRUE(freed && after);
  const uintptr_t base = freed->first_page;
  ASSERT_EQ(base % 2, 1u);
  ASSERT_EQ(base, block->first_page + n0);
  heap.Deallocate(freed);
  ASSERT_EQ(heap.Allocate(1, 1, kPageLarge, nullptr), HeapRegion::SpanAt(base));  // warm
  heap.Deallocate(HeapRegion::SpanAt(base));
  EXPECT_EXIT(
      {
        // The block's guard, as the secure library's AllocateGuarded closes it.
        if (kFreedLargePagesClosed &&
            mprotect(HeapRegion::AddressOf(base - 1), kPageSize, PROT_NONE) != 0)
          std::_Exit(10);
        std::vector<void*> maps = FillMappings(limit);
        if (maps.size() < 100 || maps.size() == limit) std::_Exit(11);
        const bool grown = heap.TryExtend(block, n0 + 10);
        if (grown != !kFreedLargePagesClosed) std::_Exit(12);
        if (block->npages != (grown ? n0 + 10 : n0)) std::_Exit(13);
        Span* inside = heap.Allocate(10, 2, kPageLarge);
        if ((inside != nullptr) == kFreedLargePagesClosed) std::_Exit(14);
        if (inside != nullptr) heap.Deallocate(inside);
        if (grown) heap.Shrink(block, n0);
        for (void* m : maps) munmap(m, 4096);
        // Room again: the same calls succeed, over the same pages.
        if (!heap.TryExtend(block, n0 + 10) || block->npages != n0 + 10) std::_Exit(15);
        inside = heap.Allocate(10, 2, kPageLarge);
        if (inside == nullptr || inside->first_page != base + 11) std::_Exit(16);
        memset(HeapRegion::AddressOf(base), 1, size_t{10} << kPageShift);
        Fill(inside, 2);
        std::_Exit(0);
      },
      ::testing::ExitedWithCode(0), "");
  for (Span* s : {block, after}) heap.Deallocate(s);
}

}  // namespace
}  // namespace jsmalloc
