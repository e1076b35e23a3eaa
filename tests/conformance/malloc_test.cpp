// Plain malloc/free behaviour, size-class rounding and malloc_usable_size.
#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <new>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "alloc_fns.h"
#include "test_util.h"

namespace fn = jstest::fn;
using jstest::kKiB;
using jstest::kMiB;

TEST(Malloc, ZeroSizeUniqueNonNull) {
  std::vector<void*> ps;
  for (int i = 0; i < 1000; ++i) {
    void* p = fn::malloc_(0);
    ASSERT_NE(p, nullptr) << "malloc(0) #" << i;
    ps.push_back(p);
  }
  std::vector<void*> sorted = ps;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(std::adjacent_find(sorted.begin(), sorted.end()), sorted.end())
      << "malloc(0) returned the same pointer twice while both were live";
  for (void* p : ps) fn::free_(p);
}

TEST(Malloc, FreeNullIsNoop) {
  fn::free_(nullptr);
  fn::libc_free_(nullptr);
  fn::js_free_(nullptr);
  fn::delete_(nullptr);
  fn::delete_array_(nullptr);
  void* p = fn::malloc_(10);
  ASSERT_NE(p, nullptr);
  fn::free_(p);
}

// Many live blocks of random sizes (0..1 MiB, and some large and huge) keep their
// contents while others are allocated and freed around them.
TEST(Malloc, LiveBlocksKeepContents) {
  jstest::Rng rng(42);
  struct Live {
    void* p;
    size_t n;
  };
  std::vector<Live> live;
  for (int i = 0; i < 20000; ++i) {
    if (!live.empty() && rng.Below(100) < 45) {
      size_t k = rng.Below(live.size());
      Live b = live[k];
      ASSERT_EQ(jstest::FindSeededMismatch(b.p, b.n, reinterpret_cast<uintptr_t>(b.p)), b.n)
          << "block " << b.p << " of " << b.n << " bytes corrupted";
      fn::free_(b.p);
      live[k] = live.back();
      live.pop_back();
      continue;
    }
    size_t n = jstest::SkewedSize(rng);
    if (i % 4000 == 3999) n = 2 * kMiB + rng.Below(kMiB);           // large
    if (i % 10000 == 9999) n = jstest::kHugeMin + rng.Below(kMiB);  // huge
    void* p = fn::malloc_(n);
    ASSERT_NE(p, nullptr);
    jstest::FillSeeded(p, n, reinterpret_cast<uintptr_t>(p));
    live.push_back({p, n});
  }
  for (const Live& b : live) {
    EXPECT_EQ(jstest::FindSeededMismatch(b.p, b.n, reinterpret_cast<uintptr_t>(b.p)), b.n);
    fn::free_(b.p);
  }
}

TEST(Malloc, FreedMemoryIsReused) {
  // A loop of malloc/free of one size must not consume new memory each time.
  jstest::DisableTransparentHugePages();
  for (size_t n : {size_t{64}, size_t{5000}, size_t{100} * kKiB, size_t{3} * kMiB}) {
    size_t before = 0;
    for (int i = 0; i < 3000; ++i) {
      if (i == 100) before = jstest::RssBytes();
      void* p = fn::malloc_(n);
      ASSERT_NE(p, nullptr);
      memset(p, 0x3C, n);
      fn::free_(p);
    }
    size_t after = jstest::RssBytes();
    EXPECT_LT(after, before + 8 * kMiB) << "size " << n << ": RSS " << before << " -> " << after;
  }
}

TEST(SizeClass, SixteenByteGranularityUpTo128) {
  for (size_t n = 1; n <= 128; ++n) {
    void* p = fn::malloc_(n);
    ASSERT_NE(p, nullptr);
    size_t usable = fn::malloc_usable_size_(p);
    EXPECT_GE(usable, n);
    EXPECT_LT(usable - n, 16u) << "malloc(" << n << ") has usable size " << usable;
    fn::free_(p);
  }
}

// Up to 16 KiB; above, blocks are whole pages (8 KiB), at most a page more than asked.
TEST(SizeClass, WasteAtMostOneEighthAbove128) {
  std::vector<size_t> sizes;
  for (size_t n = 129; n <= 8192; ++n) sizes.push_back(n);
  for (size_t n = 8193; n <= jstest::kMaxSmall; n += 61) sizes.push_back(n);
  sizes.push_back(jstest::kMaxSmall);
  for (size_t n : sizes) {
    void* p = fn::malloc_(n);
    ASSERT_NE(p, nullptr);
    size_t usable = fn::malloc_usable_size_(p);
    ASSERT_GE(usable, n);
    if (n > 16384) {
      EXPECT_LT(usable - n, 8192u) << "malloc(" << n << ") has usable size " << usable;
    } else {
      EXPECT_LE((usable - n) * 8, n)
          << "malloc(" << n << ") has usable size " << usable << ", more than 12.5 % waste";
    }
    fn::free_(p);
  }
}

TEST(UsableSize, NullIsZero) {
  EXPECT_EQ(fn::malloc_usable_size_(nullptr), 0u);
  EXPECT_EQ(fn::js_usable_size_(nullptr), 0u);
}

namespace {

// Allocates a block of n bytes between two neighbours of the same size, fills every
// usable byte of all three, and checks none spilled into another.
void CheckUsableSizeWritable(size_t n) {
  void* a = fn::malloc_(n);
  void* b = fn::malloc_(n);
  void* c = fn::malloc_(n);
  ASSERT_TRUE(a && b && c) << "malloc(" << n << ")";
  void* blocks[3] = {a, b, c};
  for (void* p : blocks) {
    size_t usable = fn::malloc_usable_size_(p);
    EXPECT_GE(usable, n) << "malloc(" << n << ")";
    EXPECT_EQ(usable, fn::js_usable_size_(p));
    jstest::FillSeeded(p, usable, reinterpret_cast<uintptr_t>(p));
  }
  for (void* p : blocks) {
    size_t usable = fn::malloc_usable_size_(p);
    EXPECT_EQ(jstest::FindSeededMismatch(p, usable, reinterpret_cast<uintptr_t>(p)), usable)
        << "malloc(" << n << "): usable bytes of one block overlap another";
  }
  for (void* p : blocks) fn::free_(p);
}

}  // namespace

TEST(UsableSize, AtLeastRequestAndWritableSmall) {
  for (size_t n : {size_t{0}, size_t{1}, size_t{15}, size_t{17}, size_t{129}, size_t{1000},
                   size_t{4097}, size_t{65535}, jstest::kMaxSmall - 1, jstest::kMaxSmall})
    CheckUsableSizeWritable(n);
}

TEST(UsableSize, AtLeastRequestAndWritableLarge) {
  for (size_t n : {jstest::kMaxSmall + 1, size_t{200} * kKiB + 3, kMiB - 1, 5 * kMiB + 7,
                   jstest::kHugeMin - 1})
    CheckUsableSizeWritable(n);
}

TEST(UsableSize, AtLeastRequestAndWritableHuge) {
  for (size_t n : {jstest::kHugeMin, jstest::kHugeMin + 1, 100 * kMiB + 12345})
    CheckUsableSizeWritable(n);
}

TEST(UsableSize, CallocAndReallocBlocks) {
  for (size_t n : {size_t{24}, size_t{3000}, size_t{500} * kKiB, 65 * kMiB}) {
    void* p = fn::calloc_(1, n);
    ASSERT_NE(p, nullptr);
    size_t usable = fn::malloc_usable_size_(p);
    EXPECT_GE(usable, n);
    memset(p, 1, usable);
    p = fn::realloc_(p, n * 2 + 1);
    ASSERT_NE(p, nullptr);
    usable = fn::malloc_usable_size_(p);
    EXPECT_GE(usable, n * 2 + 1);
    memset(p, 2, usable);
    fn::free_(p);
  }
}

namespace {

// Every way to get a block, for sizes that the caller then never writes to.
std::vector<void*> AllocateUnwritten(size_t n, int count) {
  std::vector<void*> ps;
  for (int i = 0; i < count; ++i) {
    void* p = nullptr;
    switch (i % 9) {
      case 0:
        p = fn::malloc_(n);
        break;
      case 1:
        p = fn::calloc_(1, n);
        break;
      case 2:
        p = fn::realloc_(nullptr, n);
        break;
      case 3:
        p = fn::memalign_(16, n);
        break;
      case 4:
        p = fn::aligned_alloc_(32, n);
        break;
      case 5:
        if (fn::posix_memalign_(&p, 64, n) != 0) p = nullptr;
        break;
      case 6:
        p = fn::new_(n);
        break;
      case 7:
        p = fn::js_malloc_(n);
        break;
      case 8:
        p = fn::new_aligned_(n, std::align_val_t{128});
        break;
    }
    ps.push_back(p);
  }
  return ps;
}

}  // namespace

// Blocks that are allocated and freed without the program ever writing to them (as
// malloc(0) or a tiny malloc often are) must not look freed: whatever the allocator
// wrote into a free block has to be cleared on every allocation path, or the next free
// is reported as a double free. Many rounds, so blocks cycle through every cache tier.
TEST(Malloc, UnwrittenRecycledBlocksFreeCleanly) {
  for (size_t n : {size_t{0}, size_t{1}, size_t{8}, size_t{16}, size_t{24}, size_t{100},
                   size_t{4096}, jstest::kLargeSize}) {
    for (int round = 0; round < 20; ++round) {
      std::vector<void*> ps = AllocateUnwritten(n, n >= jstest::kMaxSmall ? 45 : 900);
      for (void* p : ps) ASSERT_NE(p, nullptr) << "size " << n;
      // Odd rounds free in the reverse order of allocation.
      for (size_t j = 0; j < ps.size(); ++j) {
        size_t i = round % 2 == 0 ? j : ps.size() - 1 - j;
        void* p = ps[i];
        switch (i % 9) {
          case 6:
            fn::delete_sized_(p, n);
            break;
          case 7:
            fn::js_free_(p);
            break;
          case 8:
            fn::delete_aligned_(p, std::align_val_t{128});
            break;
          default:
            fn::free_(p);
            break;
        }
      }
    }
  }
}

// Live blocks whose words hold their own address, or small numbers, or pointers to
// their neighbours (an empty circular list head, a counter, a linked node) are freed
// without a report: no such value may look like the double-free marker. Every small
// class, and blocks freed in both orders so each lands on lists in both directions.
TEST(Malloc, SelfReferencingBlocksAreNotDoubleFrees) {
  for (size_t n = 16; n <= jstest::kMaxSmall; n += n < 256 ? 16 : n / 8) {
    std::vector<uintptr_t*> ps;
    for (int i = 0; i < 64; ++i) {
      auto* p = static_cast<uintptr_t*>(fn::malloc_(n));
      ASSERT_NE(p, nullptr);
      ps.push_back(p);
    }
    for (size_t i = 0; i < ps.size(); ++i) {
      uintptr_t self = reinterpret_cast<uintptr_t>(ps[i]);
      uintptr_t next = reinterpret_cast<uintptr_t>(ps[(i + 1) % ps.size()]);
      uintptr_t words[4][2] = {{self, self}, {next, self}, {0, 1}, {self + 8, self + n}};
      ps[i][0] = words[i % 4][0];
      ps[i][1] = words[i % 4][1];
    }
    for (size_t i = 0; i < ps.size(); i += 2) fn::free_(ps[i]);
    for (size_t i = ps.size() - 1; i < ps.size(); i -= 2) fn::free_(ps[i]);
  }
}

// Huge blocks are their own mappings, and the kernel hands the same addresses out again:
// a new huge block at (or overlapping) the address of a freed one must free cleanly.
TEST(Malloc, HugeAddressReuseFreesCleanly) {
  jstest::Rng rng(64);
  void* live[3] = {nullptr, nullptr, nullptr};
  size_t sizes[3] = {0, 0, 0};
  for (int i = 0; i < 300; ++i) {
    int k = static_cast<int>(rng.Below(3));
    if (live[k] != nullptr && rng.Below(3) == 0) {
      size_t to = jstest::kHugeMin + rng.Below(136) * kMiB + rng.Below(4096);
      void* q = fn::realloc_(live[k], to);
      ASSERT_NE(q, nullptr);
      EXPECT_EQ(static_cast<unsigned char*>(q)[0], 0xA7) << "realloc lost the first byte";
      live[k] = q;
      sizes[k] = to;
      static_cast<unsigned char*>(q)[to - 1] = 0xA7;
      continue;
    }
    if (live[k] != nullptr) fn::free_(live[k]);
    sizes[k] = jstest::kHugeMin + rng.Below(136) * kMiB + rng.Below(4096);
    live[k] = fn::malloc_(sizes[k]);
    ASSERT_NE(live[k], nullptr);
    static_cast<unsigned char*>(live[k])[0] = 0xA7;
    static_cast<unsigned char*>(live[k])[sizes[k] - 1] = 0xA7;
  }
  for (void* p : live) fn::free_(p);
}

// The same for blocks freed by another thread than the one that allocated them, then
// reused by a third.
TEST(Malloc, UnwrittenBlocksFreedCrossThread) {
  for (int round = 0; round < 10; ++round) {
    std::vector<void*> ps;
    std::thread([&] { ps = AllocateUnwritten(16, 3000); }).join();
    for (void* p : ps) ASSERT_NE(p, nullptr);
    for (size_t i = 0; i < ps.size(); ++i) {
      switch (i % 9) {
        case 6:
          fn::delete_sized_(ps[i], 16);
          break;
        case 7:
          fn::js_free_(ps[i]);
          break;
        case 8:
          fn::delete_aligned_(ps[i], std::align_val_t{128});
          break;
        default:
          fn::free_(ps[i]);
          break;
      }
    }
    std::thread([] {
      for (int i = 0; i < 3000; ++i) fn::free_(fn::malloc_(16));
      std::vector<void*> qs;
      for (int i = 0; i < 3000; ++i) qs.push_back(fn::malloc_(16));
      for (void* q : qs) fn::free_(q);
    }).join();
  }
  std::vector<void*> qs;
  for (int i = 0; i < 3000; ++i) qs.push_back(fn::malloc_(16));
  for (void* q : qs) {
    ASSERT_NE(q, nullptr);
    fn::free_(q);
  }
}

namespace {

// Frees what it holds and allocates again from a thread_local destructor, which runs
// at thread exit in an order relative to the allocator's own per-thread teardown that
// nobody controls.
struct ExitTimeUser {
  ~ExitTimeUser() {
    fn::free_(held);
    void* p = fn::malloc_(100);
    if (p != nullptr) memset(p, 1, 100);
    fn::free_(p);
    void* q = fn::malloc_(jstest::kLargeSize);
    fn::free_(q);
    ok = p != nullptr && q != nullptr;
  }
  void* held = nullptr;
  bool ok = false;
};

thread_local ExitTimeUser t_exit_user;
std::atomic<int> g_exit_time_ok{0};

pthread_key_t g_late_key;

// A pthread key destructor registered after the allocator's: allocates and frees.
void LateKeyDestructor(void* value) {
  fn::free_(value);
  void* p = fn::calloc_(10, 10);
  if (p != nullptr) g_exit_time_ok.fetch_add(1);
  fn::free_(p);
}

}  // namespace

TEST(Malloc, AllocateAndFreeInThreadExitDestructors) {
  ASSERT_EQ(pthread_key_create(&g_late_key, &LateKeyDestructor), 0);
  for (int i = 0; i < 200; ++i) {
    std::thread([] {
      void* p = fn::malloc_(64);
      ASSERT_NE(p, nullptr);
      t_exit_user.held = fn::malloc_(5000);
      pthread_setspecific(g_late_key, fn::malloc_(48));
      fn::free_(p);
    }).join();
  }
  EXPECT_EQ(g_exit_time_ok.load(), 200) << "allocation in a pthread key destructor failed";
  pthread_key_delete(g_late_key);
  // The allocator is fine afterwards, on a new thread and this one.
  std::thread([] {
    void* p = fn::malloc_(300);
    EXPECT_NE(p, nullptr);
    fn::free_(p);
  }).join();
  void* p = fn::malloc_(300);
  EXPECT_NE(p, nullptr);
  fn::free_(p);
}

// free does not change errno (POSIX.1-2024; glibc does the same), for every category.
TEST(Malloc, FreePreservesErrno) {
  for (size_t n : {jstest::kSmallSize, jstest::kLargeSize, jstest::kHugeSize}) {
    void* p = fn::malloc_(n);
    ASSERT_NE(p, nullptr);
    memset(p, 1, n < 4096 ? n : 4096);
    errno = EDOM;
    fn::free_(p);
    EXPECT_EQ(errno, EDOM) << "free of a " << n << "-byte block changed errno";
  }
}
