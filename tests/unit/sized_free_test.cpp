// PITFALL 9: a sized free with the wrong size. Checked builds (secure or debug) report
// it and abort; release builds report a size the block's class cannot hold, and take
// any other size, and the alignment, as a hint.
#include <cstdint>
#include <string>

#include <gtest/gtest.h>

#include "test_env.h"

namespace jsmalloc {
namespace {

TEST(SizedFree, RightSizeFrees) {
  testing::EnsureAllocator();
  void* p = js_malloc(100);
  js_free_sized(p, 100);
#if !defined(JSMALLOC_SECURE)    // whose quarantine keeps a freed block for a while
  EXPECT_EQ(js_malloc(100), p);  // LIFO: the block came back
  js_free(p);
#endif
}

// Every build: a size the block's class cannot hold. The secure library knows the
// exact request (100); the default one the class (112).
TEST(SizedFreeDeathTest, WrongSizeIsReportedInEveryBuild) {
  testing::EnsureAllocator();
#if defined(JSMALLOC_SECURE)
  const char* holds = "100";
#else
  const char* holds = "112";
#endif
  EXPECT_DEATH(
      {
        void* p = js_malloc(100);
        js_free_sized(p, 5000);
      },
      std::string("jsmalloc: sized free with wrong size 0x[0-9a-f]+ \\(size given 5000, "
                  "block holds ") +
          holds + "\\)");
}

TEST(SizedFreeDeathTest, WrongSizeOfALargeBlockIsReportedInEveryBuild) {
  testing::EnsureAllocator();
  EXPECT_DEATH(
      {
        void* p = js_malloc(1 << 20);
        js_free_sized(p, 100);
      },
      "jsmalloc: sized free with wrong size 0x[0-9a-f]+ \\(size given 100, block holds");
}

#if defined(JSMALLOC_SECURE)
TEST(SizedFreeDeathTest, WrongAlignmentIsReportedInCheckedBuilds) {
  testing::EnsureAllocator();
  // 64-aligned, and not 4096-aligned: the second of two consecutive 64-byte blocks.
  void* a = js_aligned_alloc(64, 64);
  void* b = js_aligned_alloc(64, 64);
  void* off = reinterpret_cast<uintptr_t>(a) % 4096 != 0 ? a : b;
  ASSERT_NE(reinterpret_cast<uintptr_t>(off) % 4096, 0u);
  EXPECT_DEATH(
      js_free_aligned_sized(off, 4096, 64),
      "jsmalloc: aligned free with wrong alignment 0x[0-9a-f]+ \\(alignment given 4096\\)");
  EXPECT_DEATH(js_free_aligned_sized(a, 48, 64),
               "jsmalloc: aligned free with wrong alignment 0x[0-9a-f]+ \\(alignment given 48\\)");
  EXPECT_DEATH(
      js_free_aligned_sized(a, 64, 5000),
      "jsmalloc: sized free with wrong size 0x[0-9a-f]+ \\(size given 5000, block holds 64\\)");
  js_free_aligned_sized(a, 64, 64);
  js_free_aligned_sized(b, 64, 64);
}
#else
TEST(SizedFree, SizeWithinTheClassIsAHintInReleaseBuilds) {
  testing::EnsureAllocator();
  void* p = js_malloc(100);
  js_free_sized(p, 110);  // class 112: the release build cannot tell
  EXPECT_EQ(js_malloc(100), p);
  js_free(p);
}

TEST(SizedFree, WrongAlignmentIsAHintInReleaseBuilds) {
  testing::EnsureAllocator();
  void* p = js_aligned_alloc(64, 64);
  js_free_aligned_sized(p, 48, 64);
  EXPECT_EQ(js_aligned_alloc(64, 64), p);
  js_free(p);
}
#endif

}  // namespace
}  // namespace jsmalloc
