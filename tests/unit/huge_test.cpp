#include "backend/huge.h"

#include <gtest/gtest.h>

#include <cstring>

#include "test_env.h"

namespace jsmalloc {
namespace {

TEST(Huge, AllocateResizeFree) {
  testing::EnsureAllocator();
  size_t count = g_huge.count();
  void* p = g_huge.Allocate(size_t{70} << 20, 1 << 21);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % (1 << 21), 0u);
  EXPECT_EQ(g_huge.count(), count + 1);
  memset(p, 0x5a, 4096);
  void* q = g_huge.Resize(p, size_t{300} << 20);
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(static_cast<unsigned char*>(q)[4095], 0x5a);
  HugeRegistry::Lookup state;
  EXPECT_EQ(g_huge.UsableSize(q, &state), size_t{300} << 20);
  EXPECT_EQ(state, HugeRegistry::Lookup::kLive);
  EXPECT_EQ(g_huge.Free(q), HugeRegistry::Lookup::kLive);
  EXPECT_EQ(g_huge.Free(q), HugeRegistry::Lookup::kFreed);
  int local;
  EXPECT_EQ(g_huge.Free(&local), HugeRegistry::Lookup::kUnknown);
  EXPECT_EQ(g_huge.count(), count);
}

TEST(Huge, TableGrows) {
  testing::EnsureAllocator();
  std::vector<void*> v;
  for (int i = 0; i < 3000; ++i) {
    void* p = g_huge.Allocate(4096, 4096);
    ASSERT_NE(p, nullptr);
    v.push_back(p);
  }
  for (void* p : v) EXPECT_EQ(g_huge.Free(p), HugeRegistry::Lookup::kLive);
}

}  // namespace
}  // namespace jsmalloc
