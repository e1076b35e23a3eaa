#include "options.h"

#include <gtest/gtest.h>

#include <stdlib.h>

#include <string>

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

// Runs LoadOptions with the environment it is given and returns what it wrote on stderr.
std::string StderrOfLoadOptions() {
  ::testing::internal::CaptureStderr();
  LoadOptions();
  return ::testing::internal::GetCapturedStderr();
}

TEST(Options, UnknownNamesAreWarnedAboutByName) {
  setenv("JSMALLOC_DECAY", "100", 1);  // a misspelt JSMALLOC_DECAY_MS
  setenv("JSMALLOC_DECAY_MSX", "100", 1);
  setenv("JSMALLOC_LIBRARY", "/x/libjsmalloc.so", 1);  // the jsmalloc command's
  const std::string err = StderrOfLoadOptions();
  EXPECT_NE(err.find("jsmalloc: ignoring unknown option JSMALLOC_DECAY (JSMALLOC_VERBOSE=1 "
                     "lists the options)\n"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find("unknown option JSMALLOC_DECAY_MSX "), std::string::npos) << err;
  EXPECT_EQ(err.find("JSMALLOC_LIBRARY"), std::string::npos) << err;
  unsetenv("JSMALLOC_DECAY");
  unsetenv("JSMALLOC_DECAY_MSX");
  unsetenv("JSMALLOC_LIBRARY");
  setenv("JSMALLOC_DECAY_MS", "500", 1);  // a real one is not "unknown"
  EXPECT_EQ(StderrOfLoadOptions().find("unknown option"), std::string::npos);
  unsetenv("JSMALLOC_DECAY_MS");
  LoadOptions();
}

class ProfileOptions : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < static_cast<int>(Option::kCount); ++i) saved_[i] = g_option_values[i];
  }
  void TearDown() override {
    for (const char* name : {"JSMALLOC_SAMPLE_INTERVAL", "JSMALLOC_PROFILE_SAMPLE",
                             "JSMALLOC_PROFILE", "JSMALLOC_LEAKS"})
      unsetenv(name);
    LoadOptions();
    for (int i = 0; i < static_cast<int>(Option::kCount); ++i) g_option_values[i] = saved_[i];
  }
  int64_t saved_[static_cast<int>(Option::kCount)];
};

TEST_F(ProfileOptions, ProfileSampleSetsTheIntervalAndIsSeenAsSet) {
  setenv("JSMALLOC_PROFILE_SAMPLE", "256k", 1);
  LoadOptions();
  EXPECT_EQ(GetOption(Option::kSampleInterval), 256 << 10);
  EXPECT_EQ(GetOption(Option::kProfileSample), 256 << 10);
  EXPECT_TRUE(OptionIsSet(Option::kProfileSample));
}

TEST_F(ProfileOptions, SampleIntervalIsStillReadAsTheOldName) {
  setenv("JSMALLOC_SAMPLE_INTERVAL", "1m", 1);
  LoadOptions();
  EXPECT_EQ(GetOption(Option::kSampleInterval), 1 << 20);
  EXPECT_EQ(GetOption(Option::kProfileSample), 1 << 20);
  EXPECT_FALSE(OptionIsSet(Option::kProfileSample));
  setenv("JSMALLOC_PROFILE_SAMPLE", "64k", 1);  // the new name wins
  LoadOptions();
  EXPECT_EQ(GetOption(Option::kSampleInterval), 64 << 10);
}

TEST_F(ProfileOptions, ProfileIsAPathKeptAsText) {
  EXPECT_EQ(GetOptionText(Option::kProfile), nullptr);
  setenv("JSMALLOC_PROFILE", "/tmp/some dir/heap.pb.gz", 1);
  LoadOptions();
  ASSERT_NE(GetOptionText(Option::kProfile), nullptr);
  EXPECT_STREQ(GetOptionText(Option::kProfile), "/tmp/some dir/heap.pb.gz");
  EXPECT_EQ(GetOption(Option::kProfile), 1);
}

}  // namespace
}  // namespace jsmalloc
