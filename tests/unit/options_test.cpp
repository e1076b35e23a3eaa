#include "options.h"

#include <gtest/gtest.h>

#include <stdlib.h>

namespace jsmalloc {
namespace {

TEST(Options, EnvironmentOverridesDefaults) {
  int64_t saved[static_cast<int>(Option::kCount)];
  for (int i = 0; i < static_cast<int>(Option::kCount); ++i) saved[i] = g_option_values[i];
  setenv("JSMALLOC_DECAY_MS", "250", 1);
  setenv("JSMALLOC_THREAD_CACHE_BYTES", "4m", 1);
  setenv("JSMALLOC_HEAP_RESERVE", "1g", 1);
  setenv("JSMALLOC_SAMPLE_INTERVAL", "bogus", 1);
  LoadOptions();
  EXPECT_EQ(GetOption(Option::kDecayMs), 250);
  EXPECT_EQ(GetOption(Option::kThreadCacheBytes), 4 << 20);
  EXPECT_EQ(GetOption(Option::kHeapReserve), int64_t{1} << 30);
  EXPECT_EQ(GetOption(Option::kSampleInterval), saved[static_cast<int>(Option::kSampleInterval)]);
  for (int i = 0; i < static_cast<int>(Option::kCount); ++i) g_option_values[i] = saved[i];
  unsetenv("JSMALLOC_DECAY_MS");
  unsetenv("JSMALLOC_THREAD_CACHE_BYTES");
  unsetenv("JSMALLOC_HEAP_RESERVE");
  unsetenv("JSMALLOC_SAMPLE_INTERVAL");
}

}  // namespace
}  // namespace jsmalloc
