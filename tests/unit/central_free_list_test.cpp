#include "middle/central_free_list.h"

#include <gtest/gtest.h>

#include <set>
#include <vector>

#include "backend/heap_region.h"
#include "backend/page_heap.h"
#include "free_list.h"
#include "size_class.h"
#include "test_env.h"
#include "test_util.h"

namespace jsmalloc {
namespace {

// A private central free list for one class, over the real page heap.
struct CentralFixture : ::testing::Test {
  void SetUp() override { testing::EnsureAllocator(); }
  void UseClass(uint8_t c) {
    cls = c;
    size = kClasses[c].size;
    cfl.Init(c);
  }
  // An ordinary fetch of up to 32 objects into objs[], or a run into run/run_count.
  int Take() { return cfl.Remove(objs, 32, &run, &run_count); }

  CentralFreeList cfl;
  uint8_t cls = 0;
  size_t size = 0;
  void* objs[32] = {};
  uintptr_t run = 0;
  int run_count = 0;
};

// The first `count` objects of a run (or of a span from `begin`).
std::vector<void*> ObjectsFrom(uintptr_t begin, int count, size_t size) {
  std::vector<void*> objs;
  for (int i = 0; i < count; ++i) objs.push_back(reinterpret_cast<void*>(begin + size_t(i) * size));
  return objs;
}

// Every object is back, so every span is retained; released, they all go back to the
// page heap.
void ExpectAllBack(CentralFreeList& cfl) {
  EXPECT_EQ(cfl.GetStats().objects_out, 0u);
  const size_t spans = cfl.GetStats().spans;
  EXPECT_EQ(cfl.retained(), spans);
  EXPECT_EQ(cfl.ReleaseRetained(), spans);
  EXPECT_EQ(cfl.retained(), 0u);
  EXPECT_EQ(cfl.GetStats().spans, 0u);
}

Span* SpanOf(uintptr_t p) {
  return HeapRegion::SpanAt(HeapRegion::PageOf(reinterpret_cast<void*>(p)));
}

// The pagemap's byte for the page of address p: a size class, or a free-page state.
uint8_t PageStateOf(uintptr_t p) {
  return HeapRegion::ClassAt(HeapRegion::PageOf(reinterpret_cast<void*>(p)));
}

TEST_F(CentralFixture, FreshSpanIsHandedOutAsARun) {
  UseClass(5);  // 80-byte objects
  EXPECT_EQ(Take(), 0);
  ASSERT_EQ(run_count, static_cast<int>(kClasses[cls].objects));  // the whole fresh span
  EXPECT_EQ((run - g_pagemap.base) % kClasses[cls].size, 0u);
  EXPECT_EQ(cfl.GetStats().spans, 1u);
  EXPECT_EQ(cfl.GetStats().objects_out, kClasses[cls].objects);
  // Give them back: the span is empty again, retained; released, it returns to the
  // page heap.
  std::vector<void*> back = ObjectsFrom(run, run_count, kClasses[cls].size);
  cfl.Insert(back.data(), static_cast<int>(back.size()));
  EXPECT_EQ(cfl.GetStats().objects_out, 0u);
  EXPECT_EQ(cfl.retained(), 1u);
  EXPECT_EQ(PageStateOf(run), cls);
  ExpectAllBack(cfl);
  EXPECT_TRUE(IsFreePage(PageStateOf(run)));
}

// A span whose objects all came back is kept for the class, as if never used: the next
// fetch gets it whole as a run from its start (the lines the program used last), not a
// new span and not its objects one by one. Its pages no longer count as zero.
TEST_F(CentralFixture, EmptiedSpanIsRetainedAsNeverUsed) {
  UseClass(6);  // 96 bytes
  const int objects = static_cast<int>(kClasses[cls].objects);
  g_page_heap.ReleaseAll();  // the span comes from pages that read as zero
  ASSERT_EQ(Take(), 0);
  ASSERT_EQ(run_count, objects);
  Span* span = SpanOf(run);
  // Handed out in pieces: a run of 10 goes back as a tail; the rest as objects in a
  // shuffled order, the last one through InsertList.
  std::vector<void*> given = ObjectsFrom(run, objects - 10, size);
  cfl.ReturnRun(run + ((objects - 10) * size), 10);
  for (size_t i = 0; i + 1 < given.size(); i += 2) std::swap(given[i], given[i + 1]);
  void* last = given.back();
  given.pop_back();
  cfl.Insert(given.data(), static_cast<int>(given.size()));
  EXPECT_EQ(cfl.retained(), 0u);
  SetListNext(last, nullptr);
  void* rest = &rest;
  EXPECT_EQ(cfl.InsertList(last, 1, &rest), 1u);
  EXPECT_EQ(rest, nullptr);
  EXPECT_EQ(cfl.retained(), 1u);
  EXPECT_EQ(cfl.GetStats().spans, 1u);
  EXPECT_TRUE(span->committed);
  const size_t used_pages = ((objects - 10) * size + kPageSize - 1) / kPageSize;
  const uint32_t used_mask = used_pages >= 32 ? ~uint32_t{0} : (uint32_t{1} << used_pages) - 1;
  EXPECT_EQ(span->zero_pages & used_mask, 0u) << "pages handed out still count as zero";
  // The next fetch: the same span, whole, from its start; no object given back.
  uintptr_t again = 0;
  int again_count = 0;
  ASSERT_EQ(cfl.Remove(objs, 32, &again, &again_count), 0);
  EXPECT_EQ(again, run);
  EXPECT_EQ(again_count, objects);
  EXPECT_EQ(cfl.retained(), 0u);
  EXPECT_EQ(cfl.GetStats().spans, 1u);
  cfl.ReturnRun(again, static_cast<uint32_t>(again_count));
  ExpectAllBack(cfl);
}

TEST_F(CentralFixture, ReturnedObjectsComeBackBeforeFreshOnes) {
  UseClass(3);  // 48 bytes
  std::set<uintptr_t> handed;
  std::vector<void*> all;
  // Take a whole span and a bit more, as runs.
  while (all.size() < kClasses[cls].objects + 10) {
    int got = Take();
    ASSERT_EQ(got, 0);
    ASSERT_GT(run_count, 0);
    for (int i = 0; i < run_count; ++i) {
      uintptr_t p = run + size_t(i) * size;
      ASSERT_TRUE(handed.insert(p).second) << "object handed out twice";
      all.push_back(reinterpret_cast<void*>(p));
    }
  }
  EXPECT_EQ(cfl.GetStats().spans, 2u);
  // Return three; the next Remove gives exactly those back.
  void* three[3] = {all[5], all[6], all[7]};
  cfl.Insert(three, 3);
  int got = Take();
  ASSERT_EQ(got, 3);
  std::set<void*> expect(three, three + 3), seen(objs, objs + 3);
  EXPECT_EQ(expect, seen);
  cfl.Insert(all.data(), static_cast<int>(all.size()));
  // Whatever runs remain uncarved do not keep spans in use once all objects are back.
  ExpectAllBack(cfl);
}

// A thread cache hands back the top of its list as it is, linked: InsertList takes the
// first n objects of the chain, across spans, and leaves the rest untouched.
TEST_F(CentralFixture, InsertListTakesTheFirstObjectsOfAChain) {
  UseClass(7);  // 112 bytes
  std::vector<void*> all;
  while (all.size() < 2 * size_t{kClasses[cls].objects}) {  // two whole spans
    ASSERT_EQ(Take(), 0);
    for (int i = 0; i < run_count; ++i)
      all.push_back(reinterpret_cast<void*>(run + size_t(i) * size));
  }
  ASSERT_EQ(cfl.GetStats().spans, 2u);
  // Chain them from the second span down into the first, as a LIFO list would be.
  for (size_t i = all.size(); i-- > 1;) SetListNext(all[i], all[i - 1]);
  SetListNext(all[0], nullptr);
  const uint32_t n = kClasses[cls].objects + 3;  // one span and 3 objects of the other
  void* rest = nullptr;
  EXPECT_EQ(cfl.InsertList(all.back(), n, &rest), n);
  EXPECT_EQ(rest, all[all.size() - 1 - n]);
  EXPECT_EQ(cfl.GetStats().objects_out, all.size() - n);
  EXPECT_EQ(cfl.retained(), 1u);  // the second span was emptied
  EXPECT_EQ(cfl.GetStats().spans, 2u);
  // The rest is linked as before; a chain shorter than asked for is taken whole.
  EXPECT_EQ(ListNext(rest), all[all.size() - 2 - n]);
  EXPECT_EQ(cfl.InsertList(rest, 10 * n, &rest), all.size() - n);
  EXPECT_EQ(rest, nullptr);
  ExpectAllBack(cfl);
}

// Objects freed in address order (or in reverse) lie on a list one object apart, and
// InsertList follows such strides without waiting for each link: a stride that breaks,
// turns round, or is cut off by the count must leave the same chain as a plain walk.
TEST_F(CentralFixture, InsertListFollowsStridesThatBreakAndTurn) {
  UseClass(4);  // 64 bytes
  ASSERT_EQ(Take(), 0);
  ASSERT_GE(run_count, 60);
  std::vector<void*> span = ObjectsFrom(run, run_count, size);
  // 0..19 ascending, 40..30 descending, then 25, 21, 23 (no stride), then 20 alone.
  std::vector<void*> order;
  for (int i = 0; i < 20; ++i) order.push_back(span[i]);
  for (int i = 40; i >= 30; --i) order.push_back(span[i]);
  for (int i : {25, 21, 23, 20}) order.push_back(span[i]);
  for (size_t i = 0; i + 1 < order.size(); ++i) SetListNext(order[i], order[i + 1]);
  SetListNext(order.back(), nullptr);
  // Cut inside the descending stride: 20 + 6 objects.
  void* rest = nullptr;
  EXPECT_EQ(cfl.InsertList(order[0], 26, &rest), 26u);
  EXPECT_EQ(rest, order[26]);
  EXPECT_EQ(cfl.GetStats().objects_out, static_cast<size_t>(run_count) - 26);
  // The rest of the chain goes back whole.
  EXPECT_EQ(cfl.InsertList(rest, 1000, &rest), order.size() - 26);
  EXPECT_EQ(rest, nullptr);
  // Exactly those objects come out again.
  std::set<void*> want(order.begin(), order.end()), got;
  while (got.size() < want.size()) {
    int n = Take();
    ASSERT_GT(n, 0) << "objects given back were lost";
    for (int i = 0; i < n; ++i) ASSERT_TRUE(got.insert(objs[i]).second);
  }
  EXPECT_EQ(got, want);
  std::vector<void*> all(got.begin(), got.end());
  for (int i = 0; i < static_cast<int>(span.size()); ++i)
    if (want.count(span[i]) == 0) all.push_back(span[i]);
  cfl.Insert(all.data(), static_cast<int>(all.size()));
  ExpectAllBack(cfl);
}

// A thread cache gives the unused tail of a run back without writing to it: the span's
// never-used part grows again, and the next run starts where the tail did. A whole
// run given back empties its span.
TEST_F(CentralFixture, ReturnRunMakesTheTailNeverUsedAgain) {
  UseClass(9);  // 144 bytes
  ASSERT_EQ(Take(), 0);
  ASSERT_EQ(run_count, static_cast<int>(kClasses[cls].objects));
  const uintptr_t tail = run + (10 * size);
  cfl.ReturnRun(tail, static_cast<uint32_t>(run_count - 10));
  EXPECT_EQ(cfl.GetStats().objects_out, 10u);
  uintptr_t again = 0;
  int again_count = 0;
  ASSERT_EQ(cfl.Remove(objs, 32, &again, &again_count), 0);
  EXPECT_EQ(again, tail);
  EXPECT_EQ(again_count, run_count - 10);
  EXPECT_EQ(cfl.GetStats().spans, 1u);
  cfl.ReturnRun(again, static_cast<uint32_t>(again_count));
  std::vector<void*> first = ObjectsFrom(run, 10, size);
  cfl.Insert(first.data(), 10);
  ExpectAllBack(cfl);
  EXPECT_TRUE(IsFreePage(PageStateOf(run)));
}

// A run can be limited; while it is out no other run comes from its span, and its
// unused tail goes back to the carve frontier once it is done with.
TEST_F(CentralFixture, LimitedRunsOneAtATimePerSpan) {
  UseClass(9);  // 144 bytes
  uintptr_t run2 = 0, run3 = 0;
  int run2_count = 0, run3_count = 0;
  ASSERT_EQ(cfl.Remove(objs, 32, &run, &run_count, {.carver = 7, .max_run_bytes = kPageSize}), 0);
  ASSERT_EQ(run_count, static_cast<int>(kPageSize / size));
  // Another carver gets a new span, not the rest of the first.
  ASSERT_EQ(cfl.Remove(objs, 32, &run2, &run2_count, {.carver = 8, .max_run_bytes = 10 * size}), 0);
  EXPECT_EQ(run2_count, 10);
  EXPECT_NE(SpanOf(run2), SpanOf(run));
  EXPECT_EQ(cfl.GetStats().spans, 2u);
  // The first run goes back but for its first object; the next run starts right there.
  cfl.ReturnRun(run + size, static_cast<uint32_t>(run_count - 1));
  ASSERT_EQ(cfl.Remove(objs, 32, &run3, &run3_count, {.carver = 9, .max_run_bytes = 2 * size}), 0);
  EXPECT_TRUE(run3 == run + size || run3 == run2 + 10 * size);
  EXPECT_EQ(run3_count, 2);
  cfl.ReturnRun(run3, 2);
  cfl.ReturnRun(run2 + size, 9);
  void* firsts[2] = {reinterpret_cast<void*>(run), reinterpret_cast<void*>(run2)};
  cfl.Insert(firsts, 2);
  ExpectAllBack(cfl);
}

// kOwnRun never hands out objects given back, even when there are some: it takes the
// never-used rest of a span, or a new span.
TEST_F(CentralFixture, OwnRunSkipsObjectsGivenBack) {
  UseClass(11);  // 176 bytes
  uintptr_t first = 0;
  int first_count = 0;
  ASSERT_EQ(cfl.Remove(objs, 32, &first, &first_count), 0);
  void* given = reinterpret_cast<void*>(first + size);
  cfl.Insert(&given, 1);
  uintptr_t own = 0;
  int own_count = 0;
  ASSERT_EQ(cfl.Remove(objs, 32, &own, &own_count, {.fetch = Fetch::kOwnRun}), 0);
  ASSERT_GT(own_count, 0);
  EXPECT_NE(SpanOf(own), SpanOf(first)) << "the own run shares a span with an object given back";
  EXPECT_EQ(cfl.GetStats().spans, 2u);
  // The object given back is still there for an ordinary fetch.
  uintptr_t unused = 0;
  int unused_count = 0;
  ASSERT_EQ(cfl.Remove(objs, 32, &unused, &unused_count), 1);
  EXPECT_EQ(objs[0], given);
  cfl.ReturnRun(own, static_cast<uint32_t>(own_count));
  std::vector<void*> all = ObjectsFrom(first, first_count, size);
  cfl.Insert(all.data(), static_cast<int>(all.size()));
  ExpectAllBack(cfl);
}

// A span's whole free list goes out as it is, linked, when the caller can hold all of
// it; when it cannot, objects are collected into out[] as usual.
TEST_F(CentralFixture, WholeFreeListOfASpanGoesOutAsAChain) {
  UseClass(13);  // 208 bytes
  ASSERT_EQ(Take(), 0);
  ASSERT_GE(run_count, 20);
  std::vector<void*> back = ObjectsFrom(run, 20, size);
  cfl.Insert(back.data(), 20);
  void* chain = &chain;
  uintptr_t unused = 0;
  int unused_count = 0;
  // Too long for the caller: a batch of 8 in out[], no chain.
  EXPECT_EQ(cfl.Remove(objs, 8, &unused, &unused_count, {.chain = &chain, .max_chain = 19}), 8);
  EXPECT_EQ(chain, nullptr);
  cfl.Insert(objs, 8);
  EXPECT_EQ(cfl.Remove(objs, 8, &unused, &unused_count, {.chain = &chain, .max_chain = 20}), 20);
  ASSERT_NE(chain, nullptr);
  std::set<void*> linked;
  int n = 0;
  for (void* p = chain; p != nullptr && n <= 20; p = ListNext(p), ++n) linked.insert(p);
  EXPECT_EQ(n, 20);
  EXPECT_EQ(linked, std::set<void*>(back.begin(), back.end()));
  EXPECT_EQ(cfl.GetStats().objects_out, static_cast<size_t>(run_count));
  cfl.Insert(back.data(), 20);
  cfl.ReturnRun(run + (20 * size), static_cast<uint32_t>(run_count - 20));
  ExpectAllBack(cfl);
}

#if defined(JSMALLOC_SECURE)
// The secure library checks each link the middle tier walks, as the thread cache does
// each one it pops: a link into an object's middle (in the same span) or out of the
// heap is reported with the object it was read from, not followed. (The default build
// would follow both.)
TEST_F(CentralFixture, SecureWalksReportACorruptedLink) {
  UseClass(7);  // 112 bytes
  ASSERT_EQ(Take(), 0);
  ASSERT_GE(run_count, 8);
  std::vector<void*> objs = ObjectsFrom(run, 8, size);
  for (size_t i = 0; i + 1 < objs.size(); ++i) SetListNext(objs[i], objs[i + 1]);
  SetListNext(objs.back(), nullptr);
  void* rest = nullptr;
  SetListNext(objs[3], static_cast<char*>(objs[5]) + 16);
  EXPECT_DEATH(cfl.InsertList(objs[0], 8, &rest),
               "jsmalloc: corrupted free list " + jstest::AddrRegex(objs[3]));
  SetListNext(objs[3], reinterpret_cast<void*>(uintptr_t{0x10000}));
  EXPECT_DEATH(cfl.InsertList(objs[0], 8, &rest),
               "jsmalloc: corrupted free list " + jstest::AddrRegex(objs[3]));
  SetListNext(objs[3], objs[4]);  // mended: taken whole
  EXPECT_EQ(cfl.InsertList(objs[0], 8, &rest), 8u);
  EXPECT_EQ(rest, nullptr);
}
#endif

}  // namespace
}  // namespace jsmalloc
