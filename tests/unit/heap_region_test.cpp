#include "backend/heap_region.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>

#include "backend/page_heap.h"
#include "size_class.h"
#include "test_env.h"
#include "test_util.h"

namespace jsmalloc {
namespace {

TEST(HeapRegion, ReservedAndAligned) {
  testing::EnsureAllocator();
  EXPECT_GE(g_region.reserved(), size_t{256} << 20);
  EXPECT_EQ(g_pagemap.base % kHugePageSize, 0u);
  EXPECT_NE(g_pagemap.tags, nullptr);
  EXPECT_NE(g_pagemap.spans, nullptr);
  for (size_t c = 0; c < 256; ++c) {
    EXPECT_EQ(ClassMagic(g_pagemap.tags, ClassTagOf(c)), kClassMagic[c]);
    EXPECT_EQ(ClassMagicLimit(g_pagemap.tags, ClassTagOf(c)), kClassMagic[c]);
  }
}

TEST(HeapRegion, PageAddressRoundTrip) {
  testing::EnsureAllocator();
  for (uintptr_t page : {uintptr_t{0}, uintptr_t{1}, uintptr_t{12345}}) {
    void* a = HeapRegion::AddressOf(page);
    EXPECT_TRUE(HeapRegion::Contains(a));
    EXPECT_EQ(HeapRegion::PageOf(a), page);
    EXPECT_EQ(HeapRegion::PageOf(static_cast<char*>(a) + kPageSize - 1), page);
  }
  EXPECT_FALSE(HeapRegion::Contains(nullptr));
  int local;
  EXPECT_FALSE(HeapRegion::Contains(&local));
  EXPECT_FALSE(HeapRegion::Contains(reinterpret_cast<void*>(g_pagemap.base + g_region.reserved())));
}

TEST(HeapRegion, PagemapDescribesEverySpanPage) {
  testing::EnsureAllocator();
  Span* s = g_page_heap.Allocate(5, 1, 7);
  ASSERT_NE(s, nullptr);
  for (uintptr_t p = s->first_page; p <= s->last_page(); ++p) {
    EXPECT_EQ(HeapRegion::SpanAt(p), s);
    EXPECT_EQ(HeapRegion::ClassAt(p), 7);
  }
  g_page_heap.Deallocate(s);
  // A freed span's pages read as free (how double frees are recognised).
  EXPECT_EQ(HeapRegion::ClassAt(HeapRegion::PageOf(HeapRegion::AddressOf(s->first_page))),
            kPageFree);
}

TEST(HeapRegion, PartitionMasksTrackGrowth) {
  testing::EnsureAllocator();
  EXPECT_GT(g_region.used(), 0u);
  EXPECT_NE(g_region.partition_mask(0) & 1, 0u);
}

// Under a finite RLIMIT_AS set after start-up, growth gives back the reservation past the
// frontier, and the range check shrinks with it: a mapping the program later makes in
// the given-back tail is not taken for a heap pointer.
void GiveBackUnderALimitSetLate() {
  size_t vm_before = jstest::VmBytes();
  size_t reserved_before = g_region.reserved();
  struct rlimit rl;
  if (getrlimit(RLIMIT_AS, &rl) != 0) jstest::ExitFailing("getrlimit");
  rl.rlim_cur = vm_before + (size_t{64} << 20);
  if (setrlimit(RLIMIT_AS, &rl) != 0) jstest::ExitFailing("setrlimit");
  // More than the heap holds free, so the page heap has to grow.
  size_t npages = (size_t{32} << 20) >> kPageShift;
  Span* s = g_page_heap.Allocate(npages, 1, kPageLarge);
  if (s == nullptr) jstest::ExitFailing("no 32 MiB span under a limit 64 MiB above the VM size");
  if (g_region.reserved() != g_region.used())
    jstest::ExitFailing("the heap still maps past its frontier");
  if (g_region.reserved() >= reserved_before) jstest::ExitFailing("the heap gave nothing back");
  if (jstest::VmBytes() + (size_t{128} << 20) > vm_before)
    jstest::ExitFailing("the VM size did not fall");
  if (HeapRegion::Contains(HeapRegion::AddressOf(g_region.used() >> kPageShift)))
    jstest::ExitFailing("the range check still covers the given-back tail");
  // Another mapping just past the frontier is the program's, not the heap's.
  void* tail = HeapRegion::AddressOf((g_region.used() >> kPageShift) + 16);
  void* q = mmap(tail, 4096, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  if (q != tail) jstest::ExitFailing("the tail past the frontier is still mapped");
  if (HeapRegion::Contains(q)) jstest::ExitFailing("a foreign mapping passes the range check");
  munmap(q, 4096);
  // The pages handed out keep working, pagemap included.
  for (uintptr_t p = s->first_page; p <= s->last_page(); p += 97)
    if (HeapRegion::SpanAt(p) != s) jstest::ExitFailing("pagemap lost the span's pages");
  __builtin_memset(HeapRegion::AddressOf(s->first_page), 1, npages << kPageShift);
  g_page_heap.Deallocate(s);
  _exit(0);
}

TEST(HeapRegion, LimitSetLateGivesBackTheUnusedReservation) {
  testing::EnsureAllocator();
  EXPECT_EXIT(GiveBackUnderALimitSetLate(), ::testing::ExitedWithCode(0), "");
}

}  // namespace
}  // namespace jsmalloc
