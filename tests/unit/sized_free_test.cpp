// PITFALL 9: a sized free with the wrong size. Checked builds (secure or debug) report
// it and abort; release builds take the size as a hint and free the block normally.
#include <gtest/gtest.h>

#include "test_env.h"

namespace jsmalloc {
namespace {

TEST(SizedFree, RightSizeFrees) {
  testing::EnsureAllocator();
  void* p = js_malloc(100);
  js_free_sized(p, 100);
  EXPECT_EQ(js_malloc(100), p);  // LIFO: the block came back
  js_free(p);
}

#if defined(JSMALLOC_SECURE)
TEST(SizedFreeDeathTest, WrongSizeIsReportedInCheckedBuilds) {
  testing::EnsureAllocator();
  EXPECT_DEATH(
      {
        void* p = js_malloc(100);
        js_free_sized(p, 5000);
      },
      "jsmalloc: sized free with wrong size 0x[0-9a-f]+ \\(size given 5000, block holds 112\\)");
}
#else
TEST(SizedFree, WrongSizeIsAHintInReleaseBuilds) {
  testing::EnsureAllocator();
  void* p = js_malloc(100);
  js_free_sized(p, 5000);
  EXPECT_EQ(js_malloc(100), p);
  js_free(p);
}
#endif

}  // namespace
}  // namespace jsmalloc
