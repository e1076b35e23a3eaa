// realloc grows and shrinks within and across the small / large / huge categories and
// keeps the contents; realloc(NULL, n) and realloc(p, 0).
#include <cstdint>
#include <cstring>
#include <vector>

#include <gtest/gtest.h>

#include "alloc_fns.h"
#include "test_util.h"

namespace fn = jstest::fn;
using jstest::kHugeMin;
using jstest::kKiB;
using jstest::kMaxSmall;
using jstest::kMiB;

namespace {

// malloc(from), fill, realloc to `to`: the first min(from, to) bytes must survive, the
// result must be aligned and have a writable usable size >= to.
void CheckRealloc(size_t from, size_t to) {
  SCOPED_TRACE(testing::Message() << "realloc from " << from << " to " << to);
  void* p = fn::malloc_(from);
  ASSERT_NE(p, nullptr);
  const uint64_t seed = from * 1000003 + to;
  jstest::FillSeeded(p, from, seed);
  void* q = fn::realloc_(p, to);
  ASSERT_NE(q, nullptr);
  size_t keep = from < to ? from : to;
  size_t bad = jstest::FindSeededMismatch(q, keep, seed);
  EXPECT_EQ(bad, keep) << "contents lost at offset " << bad;
  if (to >= 16) {
    EXPECT_TRUE(jstest::IsAligned(q, 16)) << q;
  }
  size_t usable = fn::malloc_usable_size_(q);
  EXPECT_GE(usable, to);
  memset(q, 0x6B, usable);
  fn::free_(q);
}

void CheckReallocPairs(const std::vector<size_t>& from, const std::vector<size_t>& to) {
  for (size_t f : from)
    for (size_t t : to) CheckRealloc(f, t);
}

const std::vector<size_t> kSmalls = {1, 16, 100, 1000, 4097, 60 * kKiB, kMaxSmall};
const std::vector<size_t> kLarges = {kMaxSmall + 1, 300 * kKiB, 2 * kMiB + 3, 20 * kMiB,
                                     kHugeMin - 1};
const std::vector<size_t> kHuges = {kHugeMin, 70 * kMiB + 5, 130 * kMiB};

}  // namespace

TEST(Realloc, SmallGrowSmall) {
  CheckReallocPairs({1, 16, 100, 1000}, {17, 1001, 4097, kMaxSmall});
}
TEST(Realloc, SmallShrinkSmall) {
  CheckReallocPairs({kMaxSmall, 4097, 1001}, {1, 16, 100, 1000});
}
TEST(Realloc, SmallToLarge) {
  CheckReallocPairs(kSmalls, {kMaxSmall + 1, 1 * kMiB, 9 * kMiB});
}
TEST(Realloc, SmallToHuge) {
  CheckReallocPairs({1, 1000, kMaxSmall}, {kHugeMin, 70 * kMiB});
}
TEST(Realloc, LargeToSmall) {
  CheckReallocPairs(kLarges, {0 + 1, 100, 5000, kMaxSmall});
}
TEST(Realloc, LargeGrowLarge) {
  CheckReallocPairs({kMaxSmall + 1, 300 * kKiB, 2 * kMiB}, {3 * kMiB, 20 * kMiB, kHugeMin - 1});
}
TEST(Realloc, LargeShrinkLarge) {
  CheckReallocPairs({kHugeMin - 1, 20 * kMiB, 3 * kMiB}, {kMaxSmall + 1, 300 * kKiB, 2 * kMiB});
}
TEST(Realloc, LargeToHuge) {
  CheckReallocPairs(kLarges, {kHugeMin, 100 * kMiB});
}
TEST(Realloc, HugeToSmall) {
  CheckReallocPairs(kHuges, {1, 100, kMaxSmall});
}
TEST(Realloc, HugeToLarge) {
  CheckReallocPairs(kHuges, {kMaxSmall + 1, 5 * kMiB, kHugeMin - 1});
}
TEST(Realloc, HugeGrowHuge) {
  CheckReallocPairs({kHugeMin, 70 * kMiB}, {70 * kMiB + 1, 200 * kMiB});
}
TEST(Realloc, HugeShrinkHuge) {
  CheckReallocPairs({200 * kMiB, 70 * kMiB + 1}, {kHugeMin, 70 * kMiB});
}

TEST(Realloc, SameSizeKeepsContents) {
  for (size_t n : {size_t{10}, size_t{3000}, 500 * kKiB, kHugeMin + 10}) CheckRealloc(n, n);
}

TEST(Realloc, GrowStepwiseThroughAllCategoriesAndBack) {
  const uint64_t seed = 99;
  size_t n = 1;
  void* p = fn::malloc_(n);
  ASSERT_NE(p, nullptr);
  jstest::FillSeeded(p, n, seed);
  std::vector<size_t> steps;
  for (size_t s = 2; s <= 160 * kMiB; s = s * 5 / 3 + 1) steps.push_back(s);
  for (size_t i = steps.size(); i-- > 0;) steps.push_back(steps[i] / 2 + 1);
  for (size_t to : steps) {
    void* q = fn::realloc_(p, to);
    ASSERT_NE(q, nullptr) << "realloc(" << n << " -> " << to << ")";
    size_t keep = n < to ? n : to;
    ASSERT_EQ(jstest::FindSeededMismatch(q, keep, seed), keep) << "realloc " << n << " -> " << to;
    // Extend the pattern over the new bytes (position-based, so the old prefix agrees).
    if (to > n) jstest::FillSeeded(q, to, seed);
    p = q;
    n = to;
  }
  fn::free_(p);
}

TEST(Realloc, NullActsAsMalloc) {
  for (size_t n : {size_t{0}, size_t{1}, size_t{200}, 300 * kKiB, kHugeMin + 1}) {
    void* p = fn::realloc_(nullptr, n);
    ASSERT_NE(p, nullptr) << "realloc(NULL, " << n << ")";
    if (n >= 16) {
      EXPECT_TRUE(jstest::IsAligned(p, 16));
    }
    size_t usable = fn::malloc_usable_size_(p);
    EXPECT_GE(usable, n);
    if (usable > 0) memset(p, 0x21, usable);
    fn::free_(p);
  }
}

namespace {

// realloc(p, 0) frees p and returns NULL or a unique block that free accepts.
void CheckReallocZero(size_t n) {
  void* other = fn::malloc_(n);
  void* p = fn::malloc_(n);
  ASSERT_TRUE(other && p);
  memset(p, 0x42, n);
  void* q = fn::realloc_(p, 0);
  if (q != nullptr) {
    EXPECT_NE(q, other) << "realloc(p, 0) returned a live block";
  }
  fn::free_(q);
  fn::free_(other);
}

}  // namespace

TEST(Realloc, ZeroSizeSmall) {
  CheckReallocZero(jstest::kSmallSize);
}
TEST(Realloc, ZeroSizeLarge) {
  CheckReallocZero(jstest::kLargeSize);
}
TEST(Realloc, ZeroSizeHuge) {
  CheckReallocZero(jstest::kHugeSize);
}

// realloc(p, 0) must not leak p: 2000 rounds of a touched 256 KiB block would hold
// 500 MiB if it did.
TEST(Realloc, ZeroSizeDoesNotLeak) {
  jstest::DisableTransparentHugePages();
  size_t before = 0;
  for (int i = 0; i < 2000; ++i) {
    if (i == 50) before = jstest::RssBytes();
    void* p = fn::malloc_(256 * kKiB);
    ASSERT_NE(p, nullptr);
    memset(p, 0x42, 256 * kKiB);
    void* small = fn::malloc_(100);
    ASSERT_NE(small, nullptr);
    memset(small, 0x42, 100);
    fn::free_(fn::realloc_(p, 0));
    fn::free_(fn::realloc_(small, 0));
  }
  size_t after = jstest::RssBytes();
  EXPECT_LT(after, before + 32 * kMiB) << "RSS " << before << " -> " << after;
}

TEST(Realloc, AlignedBlockGrowAndShrink) {
  // Blocks from the aligned entry points realloc like any other block.
  for (size_t a : {size_t{64}, size_t{4096}, 64 * kKiB, kMiB}) {
    void* p = fn::aligned_alloc_(a, 1000);
    ASSERT_NE(p, nullptr);
    jstest::FillSeeded(p, 1000, a);
    void* q = fn::realloc_(p, 500 * kKiB);
    ASSERT_NE(q, nullptr);
    EXPECT_EQ(jstest::FindSeededMismatch(q, 1000, a), 1000u) << "alignment " << a;
    void* r = fn::realloc_(q, 10);
    ASSERT_NE(r, nullptr);
    EXPECT_EQ(jstest::FindSeededMismatch(r, 10, a), 10u) << "alignment " << a;
    fn::free_(r);
  }
}

TEST(Realloc, LibcReallocKeepsContents) {
  void* p = fn::libc_malloc_(100);
  ASSERT_NE(p, nullptr);
  jstest::FillSeeded(p, 100, 5);
  p = fn::libc_realloc_(p, 200 * kKiB);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(jstest::FindSeededMismatch(p, 100, 5), 100u);
  fn::libc_free_(p);
}

TEST(Realloc, ReallocarrayMultiplies) {
  void* p = fn::reallocarray_(nullptr, 10, 100);
  ASSERT_NE(p, nullptr);
  EXPECT_GE(fn::malloc_usable_size_(p), 1000u);
  jstest::FillSeeded(p, 1000, 11);
  p = fn::reallocarray_(p, 3000, 100);
  ASSERT_NE(p, nullptr);
  EXPECT_GE(fn::malloc_usable_size_(p), 300000u);
  EXPECT_EQ(jstest::FindSeededMismatch(p, 1000, 11), 1000u);
  fn::free_(p);
}

// Random grow/shrink of many live blocks (small and large, in-place or moved): the
// resized block keeps its prefix and no other live block is touched.
TEST(Realloc, RandomResizesKeepNeighboursIntact) {
  struct Live {
    void* p;
    size_t n;
    uint64_t seed;
  };
  jstest::Rng rng(2024);
  std::vector<Live> live;
  for (uint64_t i = 0; i < 64; ++i) {
    size_t n = rng.Below(2) ? jstest::SkewedSize(rng) : rng.Range(kMaxSmall + 1, 2 * kMiB);
    void* p = fn::malloc_(n);
    ASSERT_NE(p, nullptr);
    jstest::FillSeeded(p, n, i);
    live.push_back({p, n, i});
  }
  for (int op = 0; op < 3000; ++op) {
    Live& b = live[rng.Below(live.size())];
    size_t to = rng.Below(3) == 0 ? jstest::SkewedSize(rng) : rng.Range(1, 3 * kMiB);
    if (to == 0) to = 1;  // (realloc to 0 frees; covered by the ZeroSize tests)
    void* q = fn::realloc_(b.p, to);
    ASSERT_NE(q, nullptr);
    size_t keep = b.n < to ? b.n : to;
    ASSERT_EQ(jstest::FindSeededMismatch(q, keep, b.seed), keep)
        << "op " << op << ": " << b.n << " -> " << to;
    b.p = q;
    b.n = to;
    jstest::FillSeeded(q, to, b.seed);
    if (op % 100 == 99) {
      for (const Live& l : live)
        ASSERT_EQ(jstest::FindSeededMismatch(l.p, l.n, l.seed), l.n)
            << "op " << op << ": neighbour clobbered";
    }
  }
  for (const Live& l : live) {
    EXPECT_EQ(jstest::FindSeededMismatch(l.p, l.n, l.seed), l.n);
    fn::free_(l.p);
  }
}

// A huge block grown while other huge blocks are live around it (it cannot always
// grow in place): contents move with it and the neighbours are intact.
TEST(Realloc, HugeGrowPastLiveNeighbours) {
  void* a = fn::malloc_(kHugeMin);
  void* b = fn::malloc_(kHugeMin);
  void* c = fn::malloc_(kHugeMin);
  ASSERT_TRUE(a && b && c);
  jstest::FillSeeded(a, kHugeMin, 1);
  jstest::FillSeeded(b, kHugeMin, 2);
  jstest::FillSeeded(c, kHugeMin, 3);
  void* b2 = fn::realloc_(b, 3 * kHugeMin);
  ASSERT_NE(b2, nullptr);
  EXPECT_EQ(jstest::FindSeededMismatch(b2, kHugeMin, 2), kHugeMin);
  EXPECT_EQ(jstest::FindSeededMismatch(a, kHugeMin, 1), kHugeMin);
  EXPECT_EQ(jstest::FindSeededMismatch(c, kHugeMin, 3), kHugeMin);
  EXPECT_GE(fn::malloc_usable_size_(b2), 3 * kHugeMin);
  memset(b2, 0x44, 3 * kHugeMin);
  EXPECT_EQ(jstest::FindSeededMismatch(a, kHugeMin, 1), kHugeMin);
  EXPECT_EQ(jstest::FindSeededMismatch(c, kHugeMin, 3), kHugeMin);
  void* b3 = fn::realloc_(b2, kHugeMin + 1);
  ASSERT_NE(b3, nullptr);
  EXPECT_GE(fn::malloc_usable_size_(b3), kHugeMin + 1);
  fn::free_(a);
  fn::free_(b3);
  fn::free_(c);
}

// Regression (found by bench/mix): blocks that are never written past their first
// byte, reallocated back and forth between small and large sizes. realloc copies
// uninitialised bytes offset for offset, so stale free markers in recycled pages must
// never reach word 1 of a live block, or a later free/realloc is misreported as a
// double free.
TEST(Realloc, UninitialisedBytesNeverLookFreed) {
  uint64_t x = 0x9e3779b97f4a7c15ull;
  void* slots[64] = {};
  for (int i = 0; i < 60000; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    int k = static_cast<int>(x % 64);
    size_t size = 32 * kKiB + (x >> 16) % (224 * kKiB);
    if (slots[k] != nullptr && (x >> 40) % 3 == 0) {
      fn::free_(slots[k]);
      slots[k] = nullptr;
      continue;
    }
    void* p = fn::realloc_(slots[k], size);
    ASSERT_NE(p, nullptr);
    *static_cast<char*>(p) = 1;
    slots[k] = p;
  }
  for (void* p : slots) fn::free_(p);
}
