#include "backend/heap_region.h"

#include <gtest/gtest.h>

#include "backend/page_heap.h"
#include "size_class.h"
#include "test_env.h"

namespace jsmalloc {
namespace {

TEST(HeapRegion, ReservedAndAligned) {
  testing::EnsureAllocator();
  EXPECT_GE(g_region.reserved(), size_t{256} << 20);
  EXPECT_EQ(g_pagemap.base % kHugePageSize, 0u);
  EXPECT_NE(g_pagemap.classes, nullptr);
  EXPECT_NE(g_pagemap.spans, nullptr);
  for (size_t c = 0; c < 256; ++c) {
    EXPECT_EQ(ClassMagic(g_pagemap.classes, c), kClassMagic[c]);
    EXPECT_EQ(ClassMagicLimit(g_pagemap.classes, c), kClassMagic[c]);
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

}  // namespace
}  // namespace jsmalloc
