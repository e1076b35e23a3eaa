// Bad input aborts with a message naming the pointer: free or realloc of a pointer
// jsmalloc never handed out (wild, stack, global, inside a block) and double frees, for
// small, large and huge blocks. Each case is a death test; the block addresses are
// taken in the parent, so the expected message names the exact pointer.
#include <csignal>
#include <cstdint>
#include <cstring>
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

// README row: free of a wild, stack, global, interior or misaligned pointer
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

// README row: free of a wild, stack, global, interior or misaligned pointer
TEST(BadInput, InvalidFreeGlobalAddress) {
  void* g = jstest::Opaque(static_cast<void*>(g_global_buffer));
  EXPECT_EXIT(fn::free_(g), kAborts, InvalidFree(g));
}

TEST(BadInput, InvalidFreeInsideSmallPlus16) {
  Block b(jstest::kSmallSize);
  EXPECT_EXIT(fn::free_(At(b.p, 16)), kAborts, InvalidFree(At(b.p, 16)));
}

// README row: free of a wild, stack, global, interior or misaligned pointer
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

// README row: double free / realloc of freed memory, large and huge
TEST(BadInput, ReallocAfterFreeLarge) {
  Block b(jstest::kLargeSize);
  EXPECT_EXIT(
      {
        fn::free_(b.p);
        fn::realloc_(b.p, 10);
      },
      kAborts, DoubleFree(b.p));
}

// README row: double free / realloc of freed memory, large and huge
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

// ---- what glibc also catches: a large block's overflow, a sized delete's wrong size ----

std::string HeapOverflow(const void* p) {
  return "jsmalloc: heap overflow " + jstest::AddrRegex(p);
}

// README row: overflow past a large block's size
TEST(BadInput, OverflowOfALargeBlockByOneByteIsSeenAtFree) {
  // The bytes after a large block's request hold a canary (the free is a slow call).
  const size_t n = jstest::kLargeSize + 10;
  Block b(n);
  EXPECT_EXIT(
      {
        static_cast<char*>(jstest::Opaque(b.p))[n] = 'x';
        fn::free_(b.p);
      },
      kAborts, HeapOverflow(b.p));
}

TEST(BadInput, OverflowOfALargeBlockIsSeenByRealloc) {
  const size_t n = jstest::kLargeSize + 100;
  Block b(n);
  EXPECT_EXIT(
      {
        memset(static_cast<char*>(jstest::Opaque(b.p)) + n, 0, 3);
        fn::realloc_(b.p, n + 1);
      },
      kAborts, HeapOverflow(b.p));
}

TEST(BadInput, LargeBlockIsTheProgramsUpToItsUsableSize) {
  // Once asked, the usable size is the program's to write: no canary is left to trip.
  void* p = fn::malloc_(jstest::kLargeSize + 10);
  size_t usable = fn::malloc_usable_size_(p);
  ASSERT_GE(usable, jstest::kLargeSize + 10);
  memset(p, 'x', usable);
  fn::free_(p);
}

TEST(BadInput, ReallocOfALargeBlockMovesItsCanary) {
  // In place, smaller and larger: the canary follows the new size.
  char* p = static_cast<char*>(fn::malloc_(jstest::kLargeSize));
  memset(p, 'x', jstest::kLargeSize);
  p = static_cast<char*>(fn::realloc_(p, jstest::kLargeSize - 5000));
  ASSERT_NE(p, nullptr);
  p = static_cast<char*>(fn::realloc_(p, jstest::kLargeSize + 3));
  ASSERT_NE(p, nullptr);
  memset(p, 'y', jstest::kLargeSize + 3);
  fn::free_(p);
}

// README row: sized free / sized delete, size the class cannot hold
TEST(BadInput, SizedDeleteWithASizeTheBlockCannotHold) {
  void* p = fn::new_(100);
  EXPECT_EXIT(fn::delete_sized_(p, 5000), kAborts,
              "jsmalloc: sized free with wrong size " + jstest::AddrRegex(p) +
                  "\\(size given 5000, block holds 112\\)");
  fn::delete_(p);
}

TEST(BadInput, SizedDeleteOfALargeBlockWithTheWrongSize) {
  void* p = fn::new_(jstest::kLargeSize);
  EXPECT_EXIT(fn::delete_array_sized_(p, 48), kAborts,
              "jsmalloc: sized free with wrong size " + jstest::AddrRegex(p));
  fn::delete_(p);
}

TEST(BadInput, SizedFreeWithAWrongSizeItsClassHoldsIsAHint) {
  // 100 and 110 bytes share a class: the default build cannot tell them apart.
  void* p = fn::malloc_(100);
  fn::js_free_sized_(p, 110);
  SUCCEED();
}
