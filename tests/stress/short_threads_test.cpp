// 10,000 short-lived threads that each allocate a few KiB in a handful of blocks and
// exit: what they cached must go back to the allocator, so memory stays bounded.
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "stress_common.h"

namespace {

using jstest::Failures;
using jstest::kMiB;
using jstest::Tagged;

constexpr int kThreads = 10000 / jstest::kStressDivisor;
constexpr int kConcurrent = 4;

// Allocates six blocks (~4.5 KiB), checks them, frees five and leaves one for the main
// thread to free after the thread has exited.
void ShortThreadBody(int id, Tagged* handed_over, Failures* failures) {
  static constexpr size_t kSizes[] = {48, 200, 520, 1000, 1200, 1600};
  Tagged blocks[6];
  for (int i = 0; i < 6; ++i) {
    blocks[i] = jstest::AllocTagged(kSizes[i] + static_cast<size_t>(id % 7));
    if (blocks[i].p == nullptr) failures->Add("thread ", id, ": allocation failed");
  }
  for (int i = 0; i < 6; ++i) {
    if (blocks[i].p == nullptr) continue;
    if (jstest::CheckTagged(blocks[i]) != blocks[i].n)
      failures->Add("thread ", id, ": block corrupted");
    if (i == id % 6) {
      *handed_over = blocks[i];
    } else {
      js_free(blocks[i].p);
    }
  }
}

void RunBatch(int first, std::vector<Tagged>* handed, Failures* failures) {
  std::thread threads[kConcurrent];
  for (int i = 0; i < kConcurrent; ++i)
    threads[i] = std::thread(ShortThreadBody, first + i, &(*handed)[first + i], failures);
  for (auto& t : threads) t.join();
  for (int i = 0; i < kConcurrent; ++i) {
    Tagged& t = (*handed)[first + i];
    if (t.p == nullptr) continue;
    if (jstest::CheckTagged(t) != t.n)
      failures->Add("block handed over by thread ", first + i, " corrupted");
    js_free(t.p);
    t = Tagged{};
  }
}

}  // namespace

TEST(Stress, TenThousandShortThreadsBoundedMemory) {
  jstest::DisableTransparentHugePages();
  Failures failures;
  std::vector<Tagged> handed(kThreads + kConcurrent);
  // Warm up: thread stacks get cached by glibc, per-thread state gets created once.
  RunBatch(kThreads, &handed, &failures);

  const size_t rss_before = jstest::RssBytes();
  const js_stats_t before = jstest::GetStats();
  for (int first = 0; first + kConcurrent <= kThreads; first += kConcurrent)
    RunBatch(first, &handed, &failures);
  const size_t rss_after = jstest::RssBytes();
  const js_stats_t after = jstest::GetStats();

  EXPECT_EQ(failures.count(), 0) << failures.text();
  // Without returning caches at thread exit, 10,000 threads x ~5 KiB would leave ~50 MiB
  // of cached blocks behind, plus per-thread metadata.
  EXPECT_LT(after.committed, before.committed + 32 * kMiB)
      << "committed " << before.committed << " -> " << after.committed;
  EXPECT_LT(after.thread_cached, 16 * kMiB) << "thread caches of exited threads were not returned";
  EXPECT_LT(after.metadata, before.metadata + 16 * kMiB)
      << "per-thread metadata not reused: " << before.metadata << " -> " << after.metadata;
  EXPECT_LT(after.in_use, before.in_use + 4 * kMiB)
      << "in_use " << before.in_use << " -> " << after.in_use;
  if (!jstest::kUnderTsan) {
    // (ThreadSanitizer's own per-thread state would dominate RSS there.)
    EXPECT_LT(rss_after, rss_before + 64 * kMiB) << "RSS " << rss_before << " -> " << rss_after;
  }
}
