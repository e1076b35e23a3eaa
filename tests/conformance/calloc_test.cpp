// calloc returns zeroed memory, in particular when it recycles blocks that were dirtied
// and freed (small, large and huge).
#include <cstdint>
#include <cstring>
#include <vector>

#include <gtest/gtest.h>

#include "alloc_fns.h"
#include "test_util.h"

namespace fn = jstest::fn;
using jstest::kKiB;
using jstest::kMiB;

namespace {

// For each size: allocates `count` blocks, dirties every usable byte, frees them, then
// callocs `count` blocks of the same size (in the two factorisations count x size and
// size x 1) and checks every requested byte is zero.
void DirtyFreeCalloc(const std::vector<size_t>& sizes, int count) {
  for (size_t n : sizes) {
    std::vector<void*> ps;
    for (int i = 0; i < count; ++i) {
      void* p = fn::malloc_(n);
      ASSERT_NE(p, nullptr) << "malloc(" << n << ")";
      memset(p, 0xEE, fn::malloc_usable_size_(p));
      ps.push_back(p);
    }
    for (void* p : ps) fn::free_(p);
    ps.clear();
    for (int i = 0; i < count; ++i) {
      void* p = (i % 2 == 0) ? fn::calloc_(1, n) : fn::calloc_(n, 1);
      ASSERT_NE(p, nullptr) << "calloc of " << n << " bytes";
      EXPECT_TRUE(n < 16 || jstest::IsAligned(p, 16)) << p;
      size_t bad = jstest::FindNonZero(p, n);
      EXPECT_EQ(bad, n) << "calloc of " << n << " bytes: byte " << bad << " of block " << p
                        << " not zero";
      // Dirty it again so the next round recycles dirty memory too.
      memset(p, 0xDD, n);
      ps.push_back(p);
    }
    for (void* p : ps) fn::free_(p);
  }
}

}  // namespace

TEST(Calloc, ZeroesRecycledSmall) {
  DirtyFreeCalloc(
      {1, 8, 16, 17, 48, 100, 128, 129, 1000, 4096, 5000, 32 * kKiB, 100 * kKiB, jstest::kMaxSmall},
      64);
}

TEST(Calloc, ZeroesRecycledLarge) {
  DirtyFreeCalloc(
      {jstest::kMaxSmall + 1, 200 * kKiB, kMiB, 3 * kMiB + 5, 20 * kMiB, jstest::kHugeMin - 1}, 4);
}

TEST(Calloc, ZeroesRecycledHuge) {
  DirtyFreeCalloc({jstest::kHugeMin, jstest::kHugeMin + 4097, 100 * kMiB}, 2);
}

TEST(Calloc, ZeroesRecycledMixedSizes) {
  // Random sizes, so blocks are recycled into neighbouring classes and split spans.
  jstest::Rng rng(7);
  std::vector<void*> ps;
  for (int round = 0; round < 20; ++round) {
    for (int i = 0; i < 500; ++i) {
      size_t n = jstest::SkewedSize(rng);
      void* p = fn::malloc_(n);
      ASSERT_NE(p, nullptr);
      memset(p, 0xC3, fn::malloc_usable_size_(p));
      ps.push_back(p);
    }
    for (void* p : ps) fn::free_(p);
    ps.clear();
    for (int i = 0; i < 500; ++i) {
      size_t n = jstest::SkewedSize(rng);
      void* p = fn::calloc_(n, 1);
      ASSERT_NE(p, nullptr);
      size_t bad = jstest::FindNonZero(p, n);
      ASSERT_EQ(bad, n) << "calloc(" << n << ", 1) = " << p << " not zero at " << bad;
      ps.push_back(p);
    }
    for (void* p : ps) {
      memset(p, 0xC3, fn::malloc_usable_size_(p));
      fn::free_(p);
    }
    ps.clear();
  }
}

TEST(Calloc, ZeroesAfterRealloc) {
  // Blocks freed by realloc (moved) are recycled by calloc zeroed.
  std::vector<void*> ps;
  for (int i = 0; i < 200; ++i) {
    void* p = fn::malloc_(1000);
    ASSERT_NE(p, nullptr);
    memset(p, 0xAB, 1000);
    p = fn::realloc_(p, 300 * kKiB);
    ASSERT_NE(p, nullptr);
    memset(p, 0xAB, 300 * kKiB);
    ps.push_back(p);
  }
  for (void* p : ps) fn::free_(p);
  for (int i = 0; i < 200; ++i) {
    void* a = fn::calloc_(1, 1000);
    void* b = fn::calloc_(300, kKiB);
    ASSERT_TRUE(a && b);
    EXPECT_EQ(jstest::FindNonZero(a, 1000), 1000u);
    EXPECT_EQ(jstest::FindNonZero(b, 300 * kKiB), 300 * kKiB);
    fn::free_(a);
    fn::free_(b);
  }
}

TEST(Calloc, LibcCallocZeroes) {
  void* p = fn::malloc_(777);
  ASSERT_NE(p, nullptr);
  memset(p, 0x99, 777);
  fn::free_(p);
  for (int i = 0; i < 10; ++i) {
    void* q = fn::libc_calloc_(7, 111);
    ASSERT_NE(q, nullptr);
    EXPECT_EQ(jstest::FindNonZero(q, 777), 777u);
    memset(q, 0x99, 777);
    fn::libc_free_(q);
  }
}

TEST(Calloc, ZeroCountOrSizeIsFreeable) {
  // Either NULL or a unique pointer, which free accepts.
  void* a = fn::calloc_(0, 16);
  void* b = fn::calloc_(16, 0);
  void* c = fn::calloc_(0, 0);
  if (a != nullptr && b != nullptr) {
    EXPECT_NE(a, b);
  }
  if (b != nullptr && c != nullptr) {
    EXPECT_NE(b, c);
  }
  if (a != nullptr && c != nullptr) {
    EXPECT_NE(a, c);
  }
  fn::free_(a);
  fn::free_(b);
  fn::free_(c);
}
