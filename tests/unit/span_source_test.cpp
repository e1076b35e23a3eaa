#include "middle/span_source.h"

#include <gtest/gtest.h>

#include <chrono>
#include <vector>

#include "backend/page_heap.h"
#include "free_list.h"
#include "jsmalloc.h"
#include "middle/middle.h"
#include "options.h"
#include "size_class.h"
#include "test_env.h"

namespace jsmalloc {
namespace {

// The largest classes of spans of several objects (a span is taken whole as a run):
// nothing else in the unit tests uses them.
constexpr uint8_t kClassA = kNumClasses - 15;  // 16 KiB
constexpr uint8_t kClassB = kNumClasses - 16;
static_assert(!OnePerSpan(kClasses[kClassA].size) && OnePerSpan(kClasses[kClassA + 1].size));

// Takes a span of class cls whole, as a run.
void TakeSpan(uint8_t cls, uintptr_t* run, int* count) {
  void* objs[1];
  ASSERT_EQ(g_central[cls].Remove(objs, 1, run, count, {.fetch = Fetch::kOwnRun, .carver = 1}), 0);
  ASSERT_EQ(*count, static_cast<int>(kClasses[cls].objects)) << "not a whole span";
}

// Takes n spans of class cls whole and gives them back: each is retained.
void RetainSpans(uint8_t cls, int n) {
  std::vector<std::pair<uintptr_t, int>> runs(static_cast<size_t>(n));
  for (auto& [run, count] : runs) ASSERT_NO_FATAL_FAILURE(TakeSpan(cls, &run, &count));
  for (auto [run, count] : runs) g_central[cls].ReturnRun(run, static_cast<uint32_t>(count));
}

size_t HeapPages() {
  PageHeap::Stats s = g_page_heap.GetStats();
  return s.free_committed_bytes + s.free_released_bytes + s.small_bytes + s.large_bytes;
}

struct SpanSource : ::testing::Test {
  void SetUp() override {
    testing::EnsureAllocator();
    js_release_free_memory();  // every free page released, no span retained
  }
  void TearDown() override {
    g_page_heap.set_decay_ns(static_cast<uint64_t>(GetOption(Option::kDecayMs)) * 1000000);
    js_release_free_memory();
  }
};

TEST_F(SpanSource, ReleaseFreeMemoryTakesRetainedSpans) {
  ASSERT_NO_FATAL_FAILURE(RetainSpans(kClassA, 3));
  EXPECT_EQ(g_central[kClassA].retained(), 3u);
  const size_t small = g_page_heap.GetStats().small_bytes;
  js_release_free_memory();
  EXPECT_EQ(g_central[kClassA].retained(), 0u);
  EXPECT_EQ(g_page_heap.GetStats().small_bytes,
            small - 3 * size_t{kClasses[kClassA].span_pages} * kPageSize);
}

// Before the page heap hands out a span (for a class, or a large block), the retained
// spans go back to it, so it reuses their pages: the heap does not grow.
TEST_F(SpanSource, RetainedSpansGoBackBeforeTheHeapHandsOutASpan) {
  const int n = 8;
  ASSERT_NO_FATAL_FAILURE(RetainSpans(kClassA, n));
  ASSERT_EQ(g_central[kClassA].retained(), size_t{n});
  const size_t pages = HeapPages();
  Span* s = AllocateSpan(kClasses[kClassB].span_pages, 1, kClassB);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(g_central[kClassA].retained(), 0u);
  EXPECT_EQ(HeapPages(), pages) << "the heap grew";
  g_page_heap.Deallocate(s);
  ASSERT_NO_FATAL_FAILURE(RetainSpans(kClassA, 1));
  Span* large = AllocateSpan(1, 1, kPageLarge);
  ASSERT_NE(large, nullptr);
  EXPECT_EQ(g_central[kClassA].retained(), 0u);
  g_page_heap.Deallocate(large);
}

// A class above 16 KiB has one object to a span: a fetch gets the objects of several
// spans (never a run), each its span's whole and carrying its free marker, as every
// object on a thread's list must (a free of one is then a double free). Given back,
// each span is retained at once, and its pages then serve a span of another such class.
TEST_F(SpanSource, ClassesOfOneObjectASpanHandOutWholeSpans) {
  constexpr uint8_t kBig = kNumClasses - 1;    // 128 KiB, 16 pages
  constexpr uint8_t kOther = kNumClasses - 9;  // 64 KiB
  static_assert(OnePerSpan(kClasses[kOther].size) && kClasses[kOther].size == 65536);
  void* objs[4] = {};
  uintptr_t run = 0;
  int count = 0;
  ASSERT_EQ(g_central[kBig].Remove(objs, 4, &run, &count, {.fetch = Fetch::kOwnRun, .carver = 1}),
            4);
  EXPECT_EQ(count, 0);
  for (void* p : objs) {
    Span* s = HeapRegion::SpanOf(p);
    ASSERT_EQ(HeapRegion::AddressOf(s->first_page), p);
    EXPECT_EQ(s->npages, 16u);
    EXPECT_EQ(s->allocated, 1u);
    EXPECT_EQ(static_cast<uintptr_t*>(p)[1], FreeMarker(p));
    EXPECT_TRUE(IsObjectOfClass(p, kBig));
    EXPECT_FALSE(IsObjectOfClass(static_cast<char*>(p) + kPageSize, kBig));
  }
  g_central[kBig].Insert(objs, 4);
  EXPECT_EQ(g_central[kBig].retained(), 4u);
  // Fetched again, from the retained spans: their objects kept the marker.
  void* again[4] = {};
  ASSERT_EQ(g_central[kBig].Remove(again, 4, &run, &count), 4);
  EXPECT_EQ(g_central[kBig].retained(), 0u);
  for (void* p : again) EXPECT_EQ(static_cast<uintptr_t*>(p)[1], FreeMarker(p));
  g_central[kBig].Insert(again, 4);
  EXPECT_EQ(g_central[kBig].retained(), 4u);
  const size_t pages = HeapPages();
  void* other[8] = {};
  ASSERT_EQ(g_central[kOther].Remove(other, 8, &run, &count), 8);
  EXPECT_EQ(HeapPages(), pages) << "the heap grew";
  for (void* p : other) EXPECT_EQ(static_cast<uintptr_t*>(p)[1], FreeMarker(p));
  EXPECT_EQ(g_central[kBig].retained(), 0u);
  g_central[kOther].Insert(other, 8);
}

// A profiler's sample of a small object (RetainedSpans::kKeep) takes a span of its own
// and leaves the classes their retained spans; the next span asked for as usual takes
// them back.
TEST_F(SpanSource, ASampleLeavesTheRetainedSpansWithTheirClasses) {
  ASSERT_NO_FATAL_FAILURE(RetainSpans(kClassA, 2));
  Span* sample = AllocateSpan(1, 1, kPageLarge, RetainedSpans::kKeep);
  ASSERT_NE(sample, nullptr);
  EXPECT_EQ(g_central[kClassA].retained(), 2u);
  Span* large = AllocateSpan(1, 1, kPageLarge);
  ASSERT_NE(large, nullptr);
  EXPECT_EQ(g_central[kClassA].retained(), 0u);
  g_page_heap.Deallocate(large);
  g_page_heap.Deallocate(sample);
}

// A retained span that no fetch reuses goes back to the page heap once it has been idle
// for the decay time; the sweep runs when spans are retained.
TEST_F(SpanSource, IdleRetainedSpansGoBackAfterTheDecayTime) {
  const uint64_t decay = 4000000;  // 4 ms
  g_page_heap.set_decay_ns(decay);
  // Both spans are taken before either is retained: taking a new span releases them.
  uintptr_t run_a = 0, run_b = 0;
  int count_a = 0, count_b = 0;
  ASSERT_NO_FATAL_FAILURE(TakeSpan(kClassA, &run_a, &count_a));
  ASSERT_NO_FATAL_FAILURE(TakeSpan(kClassB, &run_b, &count_b));
  g_central[kClassB].ReturnRun(run_b, static_cast<uint32_t>(count_b));
  const uint64_t retained_at = PageHeap::Now();
  g_central[kClassA].ReturnRun(run_a, static_cast<uint32_t>(count_a));
  ASSERT_EQ(g_central[kClassA].retained(), 1u);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  // Class B's span is reused and retained again (no new span, so nothing else releases
  // A's), until A's has been idle long enough.
  while (g_central[kClassA].retained() != 0 && std::chrono::steady_clock::now() < deadline) {
    ASSERT_NO_FATAL_FAILURE(RetainSpans(kClassB, 1));
    if (PageHeap::Now() <= retained_at + decay) {  // the sweep saw an earlier time
      ASSERT_EQ(g_central[kClassA].retained(), 1u) << "released before it was idle";
    }
    ASSERT_EQ(g_central[kClassB].retained(), 1u) << "B's span, just retained, was released";
  }
  EXPECT_EQ(g_central[kClassA].retained(), 0u);
  EXPECT_GE(PageHeap::Now(), retained_at + decay);
}

// Objects a thread freed into a transfer cache and that no thread took would pin their
// spans for good: a transfer cache that moved no batch for the decay time is drained
// into the central free list on the sweep's clock (times past any real sweep's).
TEST(TransferCacheSweep, IdleTransferCachesDrainOnTheDecayClock) {
  testing::EnsureAllocator();
  const size_t cls = SizeToClass(200);
  void* objs[8];
  for (void*& p : objs) p = js_malloc(200);
  MiddleDrainTransferCache(cls);
  ASSERT_TRUE(g_transfer[cls].Insert(objs, 8));
  const uint64_t decay = g_page_heap.decay_ns();
  const uint64_t t = PageHeap::Now() + 100 * decay;
  SpansRetained(t);  // the first sweep to see this count
  EXPECT_EQ(g_transfer[cls].count(), 8);
  SpansRetained(t + decay / 2);
  EXPECT_EQ(g_transfer[cls].count(), 8) << "drained before it was idle for the decay time";
  SpansRetained(t + decay + decay / 4);
  EXPECT_EQ(g_transfer[cls].count(), 0) << "an idle transfer cache kept its objects";
}

}  // namespace
}  // namespace jsmalloc
