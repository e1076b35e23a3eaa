// Threads work through phases of one size each. The spans a phase empties are retained
// by their class and go back to the page heap when another class needs a span (or on
// js_release_free_memory, called here from another thread all along): every block keeps
// its pattern, and the memory held stays about one phase's worth instead of stacking the
// spans of every size up.
#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "stress_common.h"

namespace {

using jstest::Failures;
using jstest::kMiB;
using jstest::Tagged;

constexpr int kThreads = 4;
constexpr int kPhases = 48 / jstest::kStressDivisor + 8;
constexpr size_t kPhaseBytes = 8 * kMiB;  // per thread
constexpr size_t kSizes[] = {48, 96, 208, 448, 1000, 3000, 12000, 40000};
constexpr size_t kNumSizes = sizeof(kSizes) / sizeof(kSizes[0]);

// Runs the phases of thread `id`; the most memory held by the size classes and blocks
// (committed, less the page heap's free pages) seen with a phase's blocks all live goes
// to *peak.
void PhaseWorker(int id, Failures* failures, std::atomic<size_t>* peak) {
  std::vector<Tagged> blocks;
  for (int phase = 0; phase < kPhases; ++phase) {
    const size_t size = kSizes[static_cast<size_t>(phase + id) % kNumSizes];
    const size_t n = kPhaseBytes / size;
    blocks.clear();
    for (size_t i = 0; i < n; ++i) {
      Tagged t = jstest::AllocTagged(size);
      if (t.p == nullptr) {
        failures->Add("thread ", id, ": allocation of ", size, " bytes failed");
        break;
      }
      blocks.push_back(t);
    }
    const js_stats_t stats = jstest::GetStats();
    const size_t held = stats.committed - stats.page_heap_free;
    size_t seen = peak->load(std::memory_order_relaxed);
    while (held > seen && !peak->compare_exchange_weak(seen, held)) {
    }
    // Every other block first, then the rest: spans empty only at the end.
    for (int pass = 0; pass < 2; ++pass) {
      for (size_t i = static_cast<size_t>(pass); i < blocks.size(); i += 2) {
        if (jstest::CheckTagged(blocks[i]) != blocks[i].n)
          failures->Add("thread ", id, ": block ", blocks[i].p, " of ", size, " bytes corrupted");
        js_free(blocks[i].p);
      }
    }
  }
}

size_t RunPhases(bool release_meanwhile, Failures* failures) {
  std::atomic<size_t> peak{0};
  std::atomic<bool> done{false};
  std::atomic<long> releases{0};
  std::thread releaser;
  if (release_meanwhile) {
    releaser = std::thread([&] {
      while (!done.load(std::memory_order_relaxed)) {
        js_release_free_memory();
        releases.fetch_add(1, std::memory_order_relaxed);
        std::this_thread::yield();
      }
    });
  }
  std::vector<std::thread> workers;
  for (int id = 0; id < kThreads; ++id) workers.emplace_back(PhaseWorker, id, failures, &peak);
  for (auto& t : workers) t.join();
  done.store(true);
  if (releaser.joinable()) releaser.join();
  if (release_meanwhile && releases.load() == 0) failures->Add("the releaser never ran");
  return peak.load();
}

TEST(Stress, RetainedSpansSurviveConcurrentRelease) {
  Failures failures;
  RunPhases(true, &failures);
  EXPECT_EQ(failures.count(), 0) << failures.text();
}

TEST(Stress, PhasesOfDifferentSizesDoNotStackUp) {
  jstest::DisableTransparentHugePages();
  Failures failures;
  const size_t peak = RunPhases(false, &failures);
  EXPECT_EQ(failures.count(), 0) << failures.text();
  // One phase: 32 MiB of live blocks, up to about 26 MiB in the thread caches (each may
  // hold a fifth of TOTAL_THREAD_CACHE_BYTES, five caches being alive), the spans the
  // threads' last phases emptied (until a new span is needed), and partly used spans:
  // 85-91 MiB here (81-83 MiB when each cache held at most 4 MiB). Keeping the spans of
  // every earlier size: 158-179 MiB.
  EXPECT_LT(peak, 110 * kMiB) << "memory held peaked at " << peak / kMiB << " MiB";
  // And all of it can go back.
  js_release_free_memory();
  const js_stats_t after = jstest::GetStats();
  EXPECT_LT(after.central_free, 8 * kMiB) << "central free after release: " << after.central_free;
}

}  // namespace
