// The js_* API of include/jsmalloc.h: allocation calls, sized free, statistics and
// releasing free memory.
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "alloc_fns.h"
#include "jsmalloc.h"
#include "test_util.h"

namespace fn = jstest::fn;
using jstest::kKiB;
using jstest::kMiB;

namespace {

const std::vector<size_t> kSizes = {
    0, 1, 16, 200, 4097, jstest::kMaxSmall, jstest::kMaxSmall + 1, 3 * kMiB, jstest::kHugeMin + 7};

js_stats_t Stats() {
  js_stats_t s;
  memset(&s, 0xFF, sizeof(s));
  js_get_stats(&s);
  return s;
}

}  // namespace

TEST(Prefixed, MallocFreeAllCategories) {
  for (size_t n : kSizes) {
    void* p = fn::js_malloc_(n);
    ASSERT_NE(p, nullptr) << n;
    if (n >= 16) {
      EXPECT_TRUE(jstest::IsAligned(p, 16));
    }
    size_t usable = fn::js_usable_size_(p);
    EXPECT_GE(usable, n);
    jstest::FillSeeded(p, usable, n);
    EXPECT_EQ(jstest::FindSeededMismatch(p, usable, n), usable);
    fn::js_free_(p);
  }
}

TEST(Prefixed, ZeroSizeUniqueNonNull) {
  void* a = fn::js_malloc_(0);
  void* b = fn::js_malloc_(0);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_NE(a, b);
  fn::js_free_(a);
  fn::js_free_(b);
}

TEST(Prefixed, CallocZeroesRecycled) {
  for (size_t n : kSizes) {
    void* p = fn::js_malloc_(n);
    ASSERT_NE(p, nullptr);
    memset(p, 0xF0, fn::js_usable_size_(p));
    fn::js_free_(p);
    void* q = fn::js_calloc_(1, n);
    ASSERT_NE(q, nullptr);
    EXPECT_EQ(jstest::FindNonZero(q, n), n) << "js_calloc of " << n;
    fn::js_free_(q);
  }
}

TEST(Prefixed, ReallocAcrossCategories) {
  void* p = fn::js_realloc_(nullptr, 10);
  ASSERT_NE(p, nullptr);
  jstest::FillSeeded(p, 10, 3);
  size_t n = 10;
  for (size_t to :
       {size_t{1000}, 300 * kKiB, jstest::kHugeMin + 1, size_t{50}, 2 * kMiB, size_t{5}}) {
    void* q = fn::js_realloc_(p, to);
    ASSERT_NE(q, nullptr);
    size_t keep = n < to ? n : to;
    EXPECT_EQ(jstest::FindSeededMismatch(q, keep, 3), keep) << n << " -> " << to;
    jstest::FillSeeded(q, to, 3);
    p = q;
    n = to;
  }
  void* z = fn::js_realloc_(p, 0);
  fn::js_free_(z);
}

TEST(Prefixed, AlignedAllocAllAlignments) {
  for (size_t a = 1; a <= 4 * kMiB; a *= 2) {
    for (size_t n : {size_t{1}, a, a + 1}) {
      void* p = fn::js_aligned_alloc_(a, n);
      ASSERT_NE(p, nullptr) << a << " " << n;
      EXPECT_TRUE(jstest::IsAligned(p, a)) << p << " alignment " << a;
      EXPECT_GE(fn::js_usable_size_(p), n);
      memset(p, 9, n);
      fn::js_free_(p);
    }
  }
}

TEST(Prefixed, FreeSizedWithExactSize) {
  for (size_t n : kSizes) {
    void* p = fn::js_malloc_(n);
    ASSERT_NE(p, nullptr);
    memset(p, 2, n);
    fn::js_free_sized_(p, n);
  }
  for (size_t n : {size_t{100}, 5 * kKiB, 200 * kKiB}) {
    void* p = fn::js_calloc_(n, 1);
    ASSERT_NE(p, nullptr);
    fn::js_free_sized_(p, n);
  }
  fn::js_free_sized_(nullptr, 0);
  fn::js_free_sized_(nullptr, 100);
  // Freed blocks are really free: the loop does not grow memory.
  jstest::DisableTransparentHugePages();
  size_t before = jstest::RssBytes();
  for (int i = 0; i < 2000; ++i) {
    void* p = fn::js_malloc_(200 * kKiB);
    ASSERT_NE(p, nullptr);
    memset(p, 1, 200 * kKiB);
    fn::js_free_sized_(p, 200 * kKiB);
  }
  EXPECT_LT(jstest::RssBytes(), before + 32 * kMiB);
}

TEST(Prefixed, FreeAlignedSizedWithExactSizeAndAlignment) {
  for (size_t a : {size_t{16}, size_t{64}, size_t{4096}, size_t{1} << 21}) {
    for (size_t n : kSizes) {
      void* p = fn::js_aligned_alloc_(a, n);
      ASSERT_NE(p, nullptr);
      memset(p, 3, n);
      fn::js_free_aligned_sized_(p, a, n);
    }
  }
  fn::js_free_aligned_sized_(nullptr, 64, 100);
  void* p = fn::js_aligned_alloc_(256, 1000);
  fn::js_free_aligned_sized_(p, 256, 1000);
  EXPECT_EQ(fn::js_aligned_alloc_(256, 1000), p);  // really freed: handed out again
  fn::js_free_(p);
}

TEST(Prefixed, GetStatsCountsLiveSmallBlocks) {
  js_stats_t before = Stats();
  std::vector<void*> ps;
  for (int i = 0; i < 4000; ++i) ps.push_back(fn::js_malloc_(1000));
  js_stats_t during = Stats();
  EXPECT_GE(during.in_use, before.in_use + 4000 * 1000)
      << "in_use " << before.in_use << " -> " << during.in_use;
  EXPECT_GE(during.committed, during.in_use);
  EXPECT_GE(during.reserved, during.committed);
  EXPECT_GT(during.metadata, 0u);
  for (void* p : ps) fn::js_free_(p);
  js_stats_t after = Stats();
  EXPECT_LE(after.in_use + 3000 * 1000, during.in_use) << "in_use did not drop after freeing 4 MB";
}

TEST(Prefixed, GetStatsCountsHuge) {
  js_stats_t before = Stats();
  void* p = fn::js_malloc_(jstest::kHugeSize);
  ASSERT_NE(p, nullptr);
  js_stats_t during = Stats();
  EXPECT_GE(during.huge, before.huge + jstest::kHugeSize);
  EXPECT_GE(during.reserved, jstest::kHugeSize);
  fn::js_free_(p);
  js_stats_t after = Stats();
  EXPECT_LE(after.huge + jstest::kHugeSize, during.huge);
}

TEST(Prefixed, GetStatsCountsSpans) {
  js_stats_t before = Stats();
  std::vector<void*> ps;
  for (int i = 0; i < 8; ++i)
    ps.push_back(fn::js_malloc_(jstest::kLargeSize + static_cast<size_t>(i) * kKiB));
  js_stats_t during = Stats();
  EXPECT_GE(during.spans_allocated, before.spans_allocated + 8);
  EXPECT_GE(during.spans_allocated, 1u);
  for (void* p : ps) fn::js_free_(p);
}

TEST(Prefixed, ReleaseFreeMemoryReturnsPagesToOs) {
  jstest::DisableTransparentHugePages();
  size_t base = jstest::RssBytes();
  std::vector<void*> ps;
  for (int i = 0; i < 32; ++i) ps.push_back(fn::js_malloc_(kMiB));
  for (int i = 0; i < 32 * 1024; ++i) ps.push_back(fn::js_malloc_(kKiB));
  for (void* p : ps) {
    ASSERT_NE(p, nullptr);
    memset(p, 0x5D, fn::js_usable_size_(p));
  }
  for (void* p : ps) fn::js_free_(p);
  size_t before_release = jstest::RssBytes();
  size_t released = js_release_free_memory();
  size_t after_release = jstest::RssBytes();
  EXPECT_LT(after_release, base + 16 * kMiB)
      << "RSS: base " << base << ", after freeing " << before_release << ", after release "
      << after_release;
  if (before_release > base + 32 * kMiB && after_release < before_release) {
    EXPECT_GE(released + 4 * kMiB, before_release - after_release)
        << "js_release_free_memory returned " << released << " but RSS fell by "
        << before_release - after_release;
  }
  // The allocator works after releasing.
  void* p = fn::js_malloc_(kMiB);
  ASSERT_NE(p, nullptr);
  memset(p, 1, kMiB);
  fn::js_free_(p);
}

TEST(Prefixed, StatsPrintTextLikeSnprintf) {
  std::vector<char> big(256 * kKiB);
  size_t needed = js_stats_print(nullptr, 0, 0);
  EXPECT_GT(needed, 0u);
  size_t len = js_stats_print(big.data(), big.size(), 0);
  ASSERT_LT(len, big.size());
  EXPECT_EQ(strlen(big.data()), len);
  char small[16];
  memset(small, 'x', sizeof(small));
  size_t full = js_stats_print(small, sizeof(small), 0);
  EXPECT_GT(full, sizeof(small) - 1);
  EXPECT_EQ(strlen(small), sizeof(small) - 1) << "truncated output must be NUL-terminated";
  char one[1] = {'x'};
  js_stats_print(one, 1, 0);
  EXPECT_EQ(one[0], '\0');
}

TEST(Prefixed, StatsPrintJsonIsWellFormed) {
  std::vector<char> big(256 * kKiB);
  size_t len = js_stats_print(big.data(), big.size(), 1);
  ASSERT_GT(len, 0u);
  ASSERT_LT(len, big.size());
  std::string json(big.data(), len);
  size_t first = json.find_first_not_of(" \t\r\n");
  size_t last = json.find_last_not_of(" \t\r\n");
  ASSERT_NE(first, std::string::npos);
  EXPECT_EQ(json[first], '{') << json;
  EXPECT_EQ(json[last], '}') << json;
  // Brackets balance outside strings, and strings are closed.
  int depth = 0;
  bool in_string = false, escaped = false, went_negative = false;
  for (char c : json) {
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    if (c == '{' || c == '[') ++depth;
    if (c == '}' || c == ']') went_negative |= --depth < 0;
  }
  EXPECT_FALSE(in_string) << json;
  EXPECT_EQ(depth, 0) << json;
  EXPECT_FALSE(went_negative) << json;
}
