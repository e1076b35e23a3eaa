// The heap profiler under load, through the js_* API: run with
// JSMALLOC_PROFILE_SAMPLE=64k in the environment (CMakeLists.txt), so that about one
// allocation in every 64 KiB is sampled, recorded and, at its free, forgotten.
//
//   DumpsWhileThreadsAllocate  four threads allocate, reallocate and free (each other's
//                              blocks too) while the main thread writes profiles in both
//                              formats, the peak, and resets the peak
//   LiveBytesFollowTheProgram  16 MiB kept in 1 MiB blocks shows in the live profile
//                              (within 15 %) and is gone from it once freed
//   SampledBlocksKeepTheirPromises  calloc zeroes, aligned_alloc aligns, realloc keeps
//                              the contents, of blocks that are sampled more often than not
#include <stdio.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "jsmalloc.h"
#include "stress_common.h"
#include "test_util.h"

namespace {

using jstest::kKiB;
using jstest::kMiB;

std::string ScratchPath(const char* name) {
  return "/tmp/jsmalloc-profile-stress-" + std::to_string(getpid()) + "-" + name;
}

std::string ReadFile(const std::string& path) {
  std::string text;
  FILE* f = fopen(path.c_str(), "rb");
  if (f == nullptr) return text;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), f)) > 0) text.append(buf, n);
  fclose(f);
  return text;
}

// Live bytes in a text profile's header ("heap profile: N: B [N: B] @ heapprofile").
long long LiveBytes(const std::string& path) {
  long long count = -1, bytes = -1;
  std::string text = ReadFile(path);
  if (sscanf(text.c_str(), "heap profile: %lld: %lld", &count, &bytes) != 2) return -1;
  return bytes;
}

TEST(ProfileStress, DumpsWhileThreadsAllocate) {
  constexpr int kThreads = 4;
  const int rounds = 20000 / jstest::kStressDivisor;
  std::atomic<void*> handoff[kThreads] = {};
  std::atomic<bool> stop{false};
  jstest::Failures failures;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      uint64_t rng = 0x9e3779b97f4a7c15ULL * static_cast<uint64_t>(t + 1);
      jstest::Tagged ring[32];
      for (int i = 0; i < rounds || !stop.load(std::memory_order_relaxed); ++i) {
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        jstest::Tagged& slot = ring[i % 32];
        size_t size = 1 + rng % (rng % 8 == 0 ? 300 * kKiB : 4 * kKiB);
        if (slot.p != nullptr && rng % 4 == 0) {
          jstest::ReallocTagged(slot, size, t, &failures);
          continue;
        }
        // Every other block goes to the next thread, which frees it.
        void* old = handoff[(t + 1) % kThreads].exchange(slot.p, std::memory_order_acq_rel);
        js_free(old);
        slot = jstest::AllocTagged(size);
        if (slot.p == nullptr) failures.Add("thread ", t, ": js_malloc(", size, ") failed");
        if (i > 100000) break;
      }
      for (auto& s : ring) js_free(s.p);
    });
  }
  const std::string text = ScratchPath("threads.heap"), proto = ScratchPath("threads.pb.gz");
  for (int k = 0; k < 10; ++k) {
    ASSERT_EQ(js_profile_dump(text.c_str()), 0) << text;
    std::string body = ReadFile(text);
    EXPECT_EQ(body.rfind("heap profile: ", 0), 0u);
    EXPECT_NE(body.find("\nMAPPED_LIBRARIES:\n"), std::string::npos);
    ASSERT_EQ(js_profile_dump(proto.c_str()), 0) << proto;
    EXPECT_EQ(ReadFile(proto).substr(0, 2), std::string("\x1f\x8b"));
    ASSERT_EQ(js_profile_dump_peak(text.c_str()), 0);
    if (k % 3 == 0) js_profile_reset_peak();
  }
  stop.store(true);
  for (auto& th : threads) th.join();
  for (auto& h : handoff) js_free(h.load());
  EXPECT_EQ(failures.count(), 0) << failures.text();
  unlink(text.c_str());
  unlink(proto.c_str());
}

__attribute__((noinline)) void KeepBlocks(void** blocks, int n, size_t size) {
  for (int i = 0; i < n; ++i) {
    blocks[i] = js_malloc(size);
    memset(blocks[i], 1, 64);
  }
}

TEST(ProfileStress, LiveBytesFollowTheProgram) {
  const std::string path = ScratchPath("live.heap");
  ASSERT_EQ(js_profile_dump(path.c_str()), 0);
  long long before = LiveBytes(path);
  void* blocks[16];
  KeepBlocks(blocks, 16, kMiB);
  ASSERT_EQ(js_profile_dump(path.c_str()), 0);
  long long kept = LiveBytes(path);
  for (void* p : blocks) js_free(p);
  ASSERT_EQ(js_profile_dump(path.c_str()), 0);
  long long after = LiveBytes(path);
  unlink(path.c_str());
  ASSERT_GE(before, 0);
  // A 1 MiB block is sampled with probability 1 - exp(-16) at a 64 KiB interval: the
  // estimate is all but exact.
  EXPECT_NEAR(static_cast<double>(kept - before), 16.0 * kMiB, 0.15 * 16 * kMiB);
  EXPECT_LT(std::llabs(after - before), static_cast<long long>(2 * kMiB));
}

TEST(ProfileStress, SampledBlocksKeepTheirPromises) {
  for (int i = 0; i < 200 / (jstest::kUnderTsan ? 4 : 1); ++i) {
    size_t size = (64 + static_cast<size_t>(i) * 37) * kKiB % (2 * kMiB) + 1;
    auto* z = static_cast<unsigned char*>(js_calloc(1, size));
    ASSERT_NE(z, nullptr);
    for (size_t k = 0; k < size; k += 4093) ASSERT_EQ(z[k], 0) << size;
    js_free(z);
    size_t align = size_t{64} << (i % 12);
    void* a = js_aligned_alloc(align, size);
    ASSERT_NE(a, nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(a) % align, 0u) << align;
    js_free(a);
    auto* r = static_cast<unsigned char*>(js_malloc(size));
    ASSERT_NE(r, nullptr);
    memset(r, 0x5a, size);
    size_t grown = size * 3 + 100;
    r = static_cast<unsigned char*>(js_realloc(r, grown));
    ASSERT_NE(r, nullptr);
    for (size_t k = 0; k < size; k += 997) ASSERT_EQ(r[k], 0x5a) << size;
    r = static_cast<unsigned char*>(js_realloc(r, 16));
    ASSERT_NE(r, nullptr);
    EXPECT_EQ(r[15], 0x5a);
    js_free(r);
  }
  // Huge blocks (own mappings), sampled every time, moved by realloc.
  void* h = js_malloc(80 * kMiB);
  ASSERT_NE(h, nullptr);
  memset(h, 7, 4096);
  h = js_realloc(h, 160 * kMiB);
  ASSERT_NE(h, nullptr);
  EXPECT_EQ(static_cast<unsigned char*>(h)[4095], 7);
  js_free(h);
}

}  // namespace
