#include "middle/transfer_cache.h"

#include <gtest/gtest.h>

#include "test_env.h"

namespace jsmalloc {
namespace {

TEST(TransferCache, MovesWholeBatchesWithinCapacity) {
  testing::EnsureAllocator();
  static constinit TransferCache tc;
  tc.set_capacity(8);
  void* in[8];
  for (int i = 0; i < 8; ++i) in[i] = reinterpret_cast<void*>(uintptr_t(0x1000 + i * 16));
  EXPECT_TRUE(tc.Insert(in, 5));
  EXPECT_EQ(tc.count(), 5);
  EXPECT_FALSE(tc.Insert(in + 5, 4));  // all or nothing
  EXPECT_EQ(tc.count(), 5);
  EXPECT_TRUE(tc.Insert(in + 5, 3));
  void* out[8] = {};
  EXPECT_EQ(tc.Remove(out, 4), 4);
  // LIFO by batch: the last inserted come out first.
  EXPECT_EQ(out[3], in[7]);
  EXPECT_EQ(tc.Remove(out, 8), 4);
  EXPECT_EQ(tc.Remove(out, 8), 0);
  EXPECT_EQ(tc.count(), 0);
}

}  // namespace
}  // namespace jsmalloc
