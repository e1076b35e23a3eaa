// Alignment of every result: plain malloc over all sizes 0..1 MiB (every size up to
// 4096, a strided/geometric sample above, every size-class boundary +-1) and the aligned
// entry points for alignments 1 B .. 4 MiB with sizes below, at and above the alignment.
#include <unistd.h>

#include <cerrno>

#include <algorithm>
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

// The alignment any result of malloc(n) must have: 16 for n >= 16 (jsmalloc's promise);
// below that, the fundamental alignment of the largest object that fits (C11 7.22.3).
size_t RequiredAlignment(size_t n) {
  if (n >= 16) return 16;
  if (n >= 8) return 8;
  if (n >= 4) return 4;
  if (n >= 2) return 2;
  return 1;
}

struct Block {
  void* p;
  size_t n;
};

// Allocates a block of each size with malloc, keeps them all live, fills every usable
// byte with a pattern of its own, then checks every block (so two blocks handed out
// over each other, or a usable size that reaches into a neighbour, is caught).
void AllocateFillCheckAll(const std::vector<size_t>& sizes) {
  std::vector<Block> blocks;
  blocks.reserve(sizes.size());
  for (size_t n : sizes) {
    void* p = fn::malloc_(n);
    ASSERT_NE(p, nullptr) << "malloc(" << n << ")";
    EXPECT_TRUE(jstest::IsAligned(p, RequiredAlignment(n)))
        << "malloc(" << n << ") = " << p << " not aligned to " << RequiredAlignment(n);
    size_t usable = fn::malloc_usable_size_(p);
    EXPECT_GE(usable, n) << "malloc(" << n << ")";
    jstest::FillSeeded(p, usable, reinterpret_cast<uintptr_t>(p) + n);
    blocks.push_back({p, n});
  }
  for (const Block& b : blocks) {
    size_t usable = fn::malloc_usable_size_(b.p);
    size_t bad = jstest::FindSeededMismatch(b.p, usable, reinterpret_cast<uintptr_t>(b.p) + b.n);
    EXPECT_EQ(bad, usable) << "block of " << b.n << " at " << b.p << " overwritten at offset "
                           << bad;
  }
  for (const Block& b : blocks) fn::free_(b.p);
}

std::vector<size_t> PowersOfTwo(size_t from, size_t to) {
  std::vector<size_t> v;
  for (size_t a = from; a <= to; a *= 2) v.push_back(a);
  return v;
}

// Sizes below, at and above the alignment a.
std::vector<size_t> SizesAround(size_t a) {
  std::vector<size_t> v = {0, 1, 8, 16, 100, a / 2, a - 1, a, a + 1, 2 * a + 16, 3 * a - 1};
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  return v;
}

using AlignedAllocator = void* (*)(size_t alignment, size_t size);

void* ViaPosixMemalign(size_t a, size_t n) {
  void* p = reinterpret_cast<void*>(uintptr_t{0x1});
  int rc = fn::posix_memalign_(&p, a, n);
  if (rc != 0) {
    ADD_FAILURE() << "posix_memalign(" << a << ", " << n << ") returned " << rc;
    return nullptr;
  }
  return p;
}
void* ViaAlignedAlloc(size_t a, size_t n) {
  return fn::aligned_alloc_(a, n);
}
void* ViaMemalign(size_t a, size_t n) {
  return fn::memalign_(a, n);
}
void* ViaLibcMemalign(size_t a, size_t n) {
  return fn::libc_memalign_(a, n);
}

// For each alignment, allocates every size around it (all live at once), checks exact
// alignment and a writable usable size >= the request, then checks nothing overlapped.
void SweepAligned(AlignedAllocator alloc, const char* what, const std::vector<size_t>& alignments) {
  for (size_t a : alignments) {
    std::vector<Block> blocks;
    for (size_t n : SizesAround(a)) {
      void* p = alloc(a, n);
      ASSERT_NE(p, nullptr) << what << "(" << a << ", " << n << ")";
      EXPECT_TRUE(jstest::IsAligned(p, a)) << what << "(" << a << ", " << n << ") = " << p;
      if (n >= 16) {
        EXPECT_TRUE(jstest::IsAligned(p, 16)) << what << "(" << a << ", " << n << ")";
      }
      size_t usable = fn::malloc_usable_size_(p);
      EXPECT_GE(usable, n) << what << "(" << a << ", " << n << ")";
      jstest::FillSeeded(p, usable, reinterpret_cast<uintptr_t>(p) ^ a);
      blocks.push_back({p, n});
    }
    for (const Block& b : blocks) {
      size_t usable = fn::malloc_usable_size_(b.p);
      EXPECT_EQ(jstest::FindSeededMismatch(b.p, usable, reinterpret_cast<uintptr_t>(b.p) ^ a),
                usable)
          << what << " alignment " << a << ": block " << b.p << " overwritten";
    }
    for (const Block& b : blocks) fn::free_(b.p);
  }
}

}  // namespace

TEST(Align, MallocEverySizeTo4096) {
  std::vector<size_t> sizes;
  for (size_t n = 0; n <= 4096; ++n) sizes.push_back(n);
  AllocateFillCheckAll(sizes);
}

TEST(Align, MallocStridedSizesTo1MiB) {
  std::vector<size_t> sizes;
  // Geometric steps of ~3 % with odd offsets, plus a few sizes around every 4 KiB.
  for (size_t n = 4097; n <= kMiB; n = n + n / 32 + 7) sizes.push_back(n);
  for (size_t n = 8 * kKiB; n <= kMiB; n += 36 * kKiB) {
    sizes.push_back(n - 1);
    sizes.push_back(n);
    sizes.push_back(n + 1);
  }
  sizes.push_back(kMiB);
  AllocateFillCheckAll(sizes);
}

TEST(Align, MallocSizeClassBoundaries) {
  // The documented class layout: 16..128 by 16, then 8 classes per doubling to 128 KiB.
  std::vector<size_t> bounds;
  for (size_t s = 16; s <= 128; s += 16) bounds.push_back(s);
  for (size_t base = 128; base < jstest::kMaxSmall; base *= 2)
    for (size_t k = 1; k <= 8; ++k) bounds.push_back(base + k * (base / 8));
  // Whatever the classes really are: every distinct usable size up to 128 KiB + 1.
  for (size_t n = 1; n <= jstest::kMaxSmall + 1;) {
    void* p = fn::malloc_(n);
    ASSERT_NE(p, nullptr);
    size_t usable = fn::malloc_usable_size_(p);
    fn::free_(p);
    ASSERT_GE(usable, n);
    bounds.push_back(usable);
    n = usable + 1;
  }
  // Small/large and large/huge edges, in allocator pages.
  for (size_t edge : {jstest::kMaxSmall, jstest::kMaxSmall + jstest::kAllocPage, size_t{1} * kMiB,
                      jstest::kHugeMin - jstest::kAllocPage, jstest::kHugeMin})
    bounds.push_back(edge);
  std::sort(bounds.begin(), bounds.end());
  bounds.erase(std::unique(bounds.begin(), bounds.end()), bounds.end());

  std::vector<size_t> sizes;
  for (size_t b : bounds) {
    sizes.push_back(b - 1);
    sizes.push_back(b);
    sizes.push_back(b + 1);
  }
  // The huge edge is checked separately (keeping 3 x 64 MiB live is wasteful here).
  std::vector<size_t> live, single;
  for (size_t n : sizes) (n < jstest::kHugeMin - jstest::kAllocPage ? live : single).push_back(n);
  AllocateFillCheckAll(live);
  for (size_t n : single) AllocateFillCheckAll({n});
}

TEST(Align, PosixMemalignAllAlignments) {
  SweepAligned(&ViaPosixMemalign, "posix_memalign", PowersOfTwo(sizeof(void*), 4 * kMiB));
}

TEST(Align, AlignedAllocAllAlignments) {
  SweepAligned(&ViaAlignedAlloc, "aligned_alloc", PowersOfTwo(1, 4 * kMiB));
}

TEST(Align, MemalignAllAlignments) {
  SweepAligned(&ViaMemalign, "memalign", PowersOfTwo(1, 4 * kMiB));
}

TEST(Align, LibcMemalignAllAlignments) {
  SweepAligned(&ViaLibcMemalign, "__libc_memalign", PowersOfTwo(1, 4 * kMiB));
}

TEST(Align, PosixMemalignPageSize) {
  for (size_t n : {size_t{1}, size_t{16}, size_t{4095}, size_t{4096}, size_t{4097}, size_t{8192},
                   size_t{100000}, kMiB}) {
    void* p = ViaPosixMemalign(4096, n);
    ASSERT_NE(p, nullptr);
    EXPECT_TRUE(jstest::IsAligned(p, 4096)) << p << " size " << n;
    size_t usable = fn::malloc_usable_size_(p);
    EXPECT_GE(usable, n);
    memset(p, 0xA5, usable);
    fn::free_(p);
  }
}

TEST(Align, PosixMemalignAboveAllocatorPage) {
  // Alignments larger than the allocator's 8 KiB page, with small sizes: served from
  // page-heap spans that must start on the requested boundary.
  for (size_t a : {16 * kKiB, 64 * kKiB, 256 * kKiB, kMiB, 2 * kMiB}) {
    std::vector<void*> ps;
    for (size_t n : {size_t{1}, size_t{16}, size_t{5000}, a / 2}) {
      void* p = ViaPosixMemalign(a, n);
      ASSERT_NE(p, nullptr);
      EXPECT_TRUE(jstest::IsAligned(p, a)) << p << " alignment " << a << " size " << n;
      EXPECT_GE(fn::malloc_usable_size_(p), n);
      memset(p, 0x5A, n);
      ps.push_back(p);
    }
    for (void* p : ps) fn::free_(p);
  }
}

TEST(Align, PosixMemalign4MiB) {
  const size_t a = 4 * kMiB;
  for (size_t n : {size_t{16}, a - 1, a, a + 1, 9 * kMiB}) {
    void* p = ViaPosixMemalign(a, n);
    ASSERT_NE(p, nullptr);
    EXPECT_TRUE(jstest::IsAligned(p, a)) << p << " size " << n;
    size_t usable = fn::malloc_usable_size_(p);
    EXPECT_GE(usable, n);
    jstest::FillSeeded(p, usable, n);
    EXPECT_EQ(jstest::FindSeededMismatch(p, usable, n), usable);
    fn::free_(p);
  }
}

TEST(Align, PosixMemalignBeyond4MiB) {
  // Not a promised range, but valid: either a correctly aligned block or ENOMEM.
  for (size_t a : {16 * kMiB, 64 * kMiB, 256 * kMiB}) {
    for (size_t n : {size_t{16}, a + 1}) {
      void* p = nullptr;
      int rc = fn::posix_memalign_(&p, a, n);
      if (rc == ENOMEM) continue;
      ASSERT_EQ(rc, 0) << "posix_memalign(" << a << ", " << n << ")";
      EXPECT_TRUE(jstest::IsAligned(p, a)) << p << " alignment " << a;
      EXPECT_GE(fn::malloc_usable_size_(p), n);
      static_cast<char*>(p)[0] = 1;
      static_cast<char*>(p)[n - 1] = 1;
      fn::free_(p);
    }
  }
}

TEST(Align, AlignedHugeBlocks) {
  // Huge sizes (own mappings) with alignments beyond the OS page.
  for (size_t a : {size_t{64}, size_t{4096}, 64 * kKiB, 2 * kMiB, 4 * kMiB}) {
    const size_t n = jstest::kHugeMin + 3 * kKiB;
    void* p = fn::aligned_alloc_(a, n);
    ASSERT_NE(p, nullptr) << "aligned_alloc(" << a << ", " << n << ")";
    EXPECT_TRUE(jstest::IsAligned(p, a)) << p << " alignment " << a;
    size_t usable = fn::malloc_usable_size_(p);
    EXPECT_GE(usable, n);
    static_cast<char*>(p)[0] = 1;
    static_cast<char*>(p)[usable - 1] = 1;
    fn::free_(p);
  }
}

TEST(Align, VallocPageAligned) {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  for (size_t n : {size_t{1}, size_t{16}, page - 1, page, page + 1, 3 * page, kMiB, 70 * kMiB}) {
    void* p = fn::valloc_(n);
    ASSERT_NE(p, nullptr) << "valloc(" << n << ")";
    EXPECT_TRUE(jstest::IsAligned(p, page)) << "valloc(" << n << ") = " << p;
    size_t usable = fn::malloc_usable_size_(p);
    EXPECT_GE(usable, n);
    static_cast<char*>(p)[0] = 1;
    static_cast<char*>(p)[usable - 1] = 1;
    fn::free_(p);
  }
}

TEST(Align, PvallocRoundsUpToPage) {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  for (size_t n : {size_t{1}, size_t{16}, page - 1, page, page + 1, 3 * page + 5, kMiB + 1}) {
    void* p = fn::pvalloc_(n);
    ASSERT_NE(p, nullptr) << "pvalloc(" << n << ")";
    EXPECT_TRUE(jstest::IsAligned(p, page)) << "pvalloc(" << n << ") = " << p;
    size_t rounded = (n + page - 1) / page * page;
    size_t usable = fn::malloc_usable_size_(p);
    EXPECT_GE(usable, rounded) << "pvalloc(" << n << ") must give whole pages";
    memset(p, 0x11, rounded);
    fn::free_(p);
  }
}

namespace {

// Allocates `count` blocks of `size` bytes aligned to `alignment`, writes the requested
// bytes of each, and returns how much the resident set grew.
size_t RssGrowthOfAlignedBlocks(size_t alignment, size_t size, size_t count,
                                std::vector<void*>* out) {
  jstest::DisableTransparentHugePages();
  out->reserve(count);
  size_t before = jstest::RssBytes();
  for (size_t i = 0; i < count; ++i) {
    void* p = nullptr;
    if (fn::posix_memalign_(&p, alignment, size) != 0 || p == nullptr) {
      ADD_FAILURE() << "posix_memalign(" << alignment << ", " << size << ") failed";
      break;
    }
    if (!jstest::IsAligned(p, alignment)) {
      ADD_FAILURE() << p << " not aligned to " << alignment;
    }
    memset(p, 0x77, size);
    out->push_back(p);
  }
  size_t after = jstest::RssBytes();
  return after > before ? after - before : 0;
}

}  // namespace

// Repeated small aligned allocations must not each waste `alignment` bytes of memory.
// Every block starts on its own 4 KiB page, so one OS page per block is the floor; an
// allocator that spends a second page per block (padding it writes, headers, a page
// per block of its own 8 KiB pages) exceeds the bound.
TEST(Align, PosixMemalignPageSizeNoWaste) {
  const size_t count = 4000;
  std::vector<void*> blocks;
  size_t growth = RssGrowthOfAlignedBlocks(4096, 16, count, &blocks);
  const size_t bound = count * (jstest::kOsPage + 64) + 4 * kMiB;
  EXPECT_LE(growth, bound) << count << " x posix_memalign(4096, 16) grew RSS by " << growth;
  for (void* p : blocks) fn::free_(p);
}

TEST(Align, PosixMemalign64KiBNoWaste) {
  const size_t count = 1000;
  std::vector<void*> blocks;
  size_t growth = RssGrowthOfAlignedBlocks(64 * kKiB, 16, count, &blocks);
  const size_t bound = count * (jstest::kOsPage + 64) + 4 * kMiB;
  EXPECT_LE(growth, bound) << count << " x posix_memalign(64 KiB, 16) grew RSS by " << growth;
  for (void* p : blocks) fn::free_(p);
}

// Freed aligned blocks are reused: a long alloc/free loop of aligned blocks does not grow.
TEST(Align, AlignedAllocFreeLoopDoesNotGrow) {
  jstest::DisableTransparentHugePages();
  size_t before = 0;
  for (int round = 0; round < 2000; ++round) {
    if (round == 100) before = jstest::RssBytes();
    void* ps[4];
    ps[0] = fn::aligned_alloc_(4096, 100);
    ps[1] = fn::aligned_alloc_(64 * kKiB, 20000);
    ps[2] = fn::aligned_alloc_(kMiB, 3000);
    ps[3] = fn::aligned_alloc_(256, 300 * kKiB);
    for (void* p : ps) {
      ASSERT_NE(p, nullptr);
      memset(p, 1, 100);
    }
    for (void* p : ps) fn::free_(p);
  }
  size_t after = jstest::RssBytes();
  EXPECT_LT(after, before + 16 * kMiB) << "RSS grew from " << before << " to " << after;
}
