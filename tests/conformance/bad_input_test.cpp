// Bad input aborts with a message naming the pointer: free or realloc of a pointer
// jsmalloc never handed out (wild, stack, global, inside a block) and double frees, for
// small, large and huge blocks. Each case is a death test; the block addresses are
// taken in the parent, so the expected message names the exact pointer.
#include <csignal>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "alloc_fns.h"
#include "test_util.h"

namespace fn = jstest::fn;

namespace {

alignas(64) char g_global_buffer[256];

std::string InvalidFree(const void* p) {
  return "jsmalloc: invalid free " + jstest::AddrRegex(p);
}
std::string InvalidRealloc(const void* p) {
  return "jsmalloc: invalid realloc " + jstest::AddrRegex(p);
}
std::string DoubleFree(const void* p) {
  return "jsmalloc: double free " + jstest::AddrRegex(p);
}

const auto kAborts = testing::KilledBySignal(SIGABRT);

void* At(void* p, size_t offset) {
  return jstest::Opaque(static_cast<char*>(p) + offset);
}

// Blocks the "after other frees" cases free in between (only frees, no allocation, so
// nothing can reuse the block under test).
struct Others {
  Others(size_t size, int count) {
    for (int i = 0; i < count; ++i) ps.push_back(fn::malloc_(size));
  }
  void FreeAll() {
    for (void* p : ps) fn::free_(p);
  }
  std::vector<void*> ps;
};

// In the parent, blocks passed to a death test are freed afterwards (the child's frees
// happened in its own copy of the heap).
struct Block {
  explicit Block(size_t n) : p(fn::malloc_(n)) {}
  ~Block() { fn::free_(p); }
  void* p;
};

}  // namespace

// ---- free of pointers jsmalloc never handed out ----

TEST(BadInput, InvalidFreeWildAddress) {
  void* wild = reinterpret_cast<void*>(uintptr_t{0x12345678});
  EXPECT_EXIT(fn::free_(wild), kAborts, InvalidFree(wild));
}

TEST(BadInput, InvalidFreeStackAddress) {
  alignas(64) char buf[256];
  void* stack = jstest::Opaque(static_cast<void*>(buf));
  static_cast<char*>(stack)[0] = 1;
  EXPECT_EXIT(fn::free_(stack), kAborts, InvalidFree(stack));
}

TEST(BadInput, InvalidFreeGlobalAddress) {
  void* g = jstest::Opaque(static_cast<void*>(g_global_buffer));
  EXPECT_EXIT(fn::free_(g), kAborts, InvalidFree(g));
}

TEST(BadInput, InvalidFreeInsideSmallPlus16) {
  Block b(jstest::kSmallSize);
  EXPECT_EXIT(fn::free_(At(b.p, 16)), kAborts, InvalidFree(At(b.p, 16)));
}

TEST(BadInput, InvalidFreeInsideSmallPlus1) {
  Block b(jstest::kSmallSize);
  EXPECT_EXIT(fn::free_(At(b.p, 1)), kAborts, InvalidFree(At(b.p, 1)));
}

TEST(BadInput, InvalidFreeInsideLargePlus16) {
  Block b(jstest::kLargeSize);
  EXPECT_EXIT(fn::free_(At(b.p, 16)), kAborts, InvalidFree(At(b.p, 16)));
}

TEST(BadInput, InvalidFreeInsideLargePlus1) {
  Block b(jstest::kLargeSize);
  EXPECT_EXIT(fn::free_(At(b.p, 1)), kAborts, InvalidFree(At(b.p, 1)));
}

TEST(BadInput, InvalidFreeInsideLargeNextPage) {
  // An interior pointer on a later page of the span (page-aligned, so not a cheap reject).
  Block b(jstest::kLargeSize);
  void* inner = At(b.p, 2 * jstest::kAllocPage);
  EXPECT_EXIT(fn::free_(inner), kAborts, InvalidFree(inner));
}

TEST(BadInput, InvalidFreeInsideHugePlus16) {
  Block b(jstest::kHugeSize);
  EXPECT_EXIT(fn::free_(At(b.p, 16)), kAborts, InvalidFree(At(b.p, 16)));
}

TEST(BadInput, InvalidFreeInsideHugePlus1) {
  Block b(jstest::kHugeSize);
  EXPECT_EXIT(fn::free_(At(b.p, 1)), kAborts, InvalidFree(At(b.p, 1)));
}

TEST(BadInput, InvalidFreeInsideHugeNextMiB) {
  Block b(jstest::kHugeSize);
  void* inner = At(b.p, jstest::kMiB);
  EXPECT_EXIT(fn::free_(inner), kAborts, InvalidFree(inner));
}

// ---- double free ----

TEST(BadInput, DoubleFreeSmallImmediate) {
  Block b(jstest::kSmallSize);
  EXPECT_EXIT(
      {
        fn::free_(b.p);
        fn::free_(b.p);
      },
      kAborts, DoubleFree(b.p));
}

TEST(BadInput, DoubleFreeSmallAfterOtherFrees) {
  // Other blocks of the same class are freed in between, so the block is no longer at
  // the head of any free list.
  Others same(jstest::kSmallSize, 64);
  Others other(48, 16);
  Block b(jstest::kSmallSize);
  EXPECT_EXIT(
      {
        fn::free_(b.p);
        same.FreeAll();
        other.FreeAll();
        fn::free_(b.p);
      },
      kAborts, DoubleFree(b.p));
  same.FreeAll();
  other.FreeAll();
}

TEST(BadInput, DoubleFreeSmallAfterManyFrees) {
  // Enough frees of the same class in between to push it out of the thread cache.
  Others same(jstest::kSmallSize, 5000);
  Block b(jstest::kSmallSize);
  EXPECT_EXIT(
      {
        fn::free_(b.p);
        same.FreeAll();
        fn::free_(b.p);
      },
      kAborts, DoubleFree(b.p));
  same.FreeAll();
}

TEST(BadInput, DoubleFreeSmallFromAnotherThread) {
  // The first free is a remote free (another thread than the allocating one).
  Block b(jstest::kSmallSize);
  EXPECT_EXIT(
      {
        std::thread([&] { fn::free_(b.p); }).join();
        fn::free_(b.p);
      },
      kAborts, DoubleFree(b.p));
}

TEST(BadInput, DoubleFreeLargeImmediate) {
  Block b(jstest::kLargeSize);
  EXPECT_EXIT(
      {
        fn::free_(b.p);
        fn::free_(b.p);
      },
      kAborts, DoubleFree(b.p));
}

TEST(BadInput, DoubleFreeLargeAfterOtherFrees) {
  // Only unrelated small frees in between: the large block's pages are not reused.
  Others others(64, 32);
  Block b(jstest::kLargeSize);
  EXPECT_EXIT(
      {
        fn::free_(b.p);
        others.FreeAll();
        fn::free_(b.p);
      },
      kAborts, DoubleFree(b.p));
  others.FreeAll();
}

TEST(BadInput, DoubleFreeHugeImmediate) {
  Block b(jstest::kHugeSize);
  EXPECT_EXIT(
      {
        fn::free_(b.p);
        fn::free_(b.p);
      },
      kAborts, DoubleFree(b.p));
}

TEST(BadInput, DoubleFreeHugeAfterOtherFrees) {
  Others others(64, 32);
  Others large(jstest::kLargeSize, 2);
  Block b(jstest::kHugeSize);
  EXPECT_EXIT(
      {
        fn::free_(b.p);
        others.FreeAll();
        large.FreeAll();
        fn::free_(b.p);
      },
      kAborts, DoubleFree(b.p));
  others.FreeAll();
  large.FreeAll();
}

TEST(BadInput, DoubleFreeAlignedBlock) {
  void* p = fn::aligned_alloc_(64 * jstest::kKiB, 100);
  ASSERT_NE(p, nullptr);
  EXPECT_EXIT(
      {
        fn::free_(p);
        fn::free_(p);
      },
      kAborts, DoubleFree(p));
  fn::free_(p);
}

// ---- realloc of pointers never handed out, or already freed ----

TEST(BadInput, InvalidReallocWildAddress) {
  void* wild = reinterpret_cast<void*>(uintptr_t{0x12345678});
  EXPECT_EXIT(fn::realloc_(wild, 100), kAborts, InvalidRealloc(wild));
}

TEST(BadInput, InvalidReallocStackAddress) {
  alignas(64) char buf[256];
  void* stack = jstest::Opaque(static_cast<void*>(buf));
  static_cast<char*>(stack)[0] = 1;
  EXPECT_EXIT(fn::realloc_(stack, 100), kAborts, InvalidRealloc(stack));
}

TEST(BadInput, InvalidReallocGlobalAddress) {
  void* g = jstest::Opaque(static_cast<void*>(g_global_buffer));
  EXPECT_EXIT(fn::realloc_(g, 100), kAborts, InvalidRealloc(g));
}

TEST(BadInput, InvalidReallocInsideSmall) {
  Block b(jstest::kSmallSize);
  EXPECT_EXIT(fn::realloc_(At(b.p, 16), 1000), kAborts, InvalidRealloc(At(b.p, 16)));
}

TEST(BadInput, InvalidReallocInsideLarge) {
  Block b(jstest::kLargeSize);
  EXPECT_EXIT(fn::realloc_(At(b.p, 16), 10), kAborts, InvalidRealloc(At(b.p, 16)));
}

TEST(BadInput, InvalidReallocInsideHuge) {
  Block b(jstest::kHugeSize);
  EXPECT_EXIT(fn::realloc_(At(b.p, 1), 10), kAborts, InvalidRealloc(At(b.p, 1)));
}

TEST(BadInput, ReallocAfterFreeSmall) {
  Block b(jstest::kSmallSize);
  EXPECT_EXIT(
      {
        fn::free_(b.p);
        fn::realloc_(b.p, 1000);
      },
      kAborts, DoubleFree(b.p));
}

TEST(BadInput, ReallocAfterFreeLarge) {
  Block b(jstest::kLargeSize);
  EXPECT_EXIT(
      {
        fn::free_(b.p);
        fn::realloc_(b.p, 10);
      },
      kAborts, DoubleFree(b.p));
}

TEST(BadInput, ReallocAfterFreeHuge) {
  Block b(jstest::kHugeSize);
  EXPECT_EXIT(
      {
        fn::free_(b.p);
        fn::realloc_(b.p, 10);
      },
      kAborts, DoubleFree(b.p));
}

// ---- the other deallocation entry points report the same way ----

TEST(BadInput, PrefixedFreeInvalid) {
  void* wild = reinterpret_cast<void*>(uintptr_t{0x12345678});
  EXPECT_EXIT(fn::js_free_(wild), kAborts, InvalidFree(wild));
}

TEST(BadInput, PrefixedFreeDouble) {
  void* p = fn::js_malloc_(100);
  ASSERT_NE(p, nullptr);
  EXPECT_EXIT(
      {
        fn::js_free_(p);
        fn::js_free_(p);
      },
      kAborts, DoubleFree(p));
  fn::js_free_(p);
}

TEST(BadInput, LibcFreeDouble) {
  void* p = fn::libc_malloc_(100);
  ASSERT_NE(p, nullptr);
  EXPECT_EXIT(
      {
        fn::libc_free_(p);
        fn::libc_free_(p);
      },
      kAborts, DoubleFree(p));
  fn::libc_free_(p);
}

TEST(BadInput, OperatorDeleteDouble) {
  void* p = fn::new_(100);
  EXPECT_EXIT(
      {
        fn::delete_(p);
        fn::delete_(p);
      },
      kAborts, DoubleFree(p));
  fn::delete_(p);
}
