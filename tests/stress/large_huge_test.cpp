// Large (page-heap) and huge (own mapping) blocks allocated, resized and freed by four
// threads at once: the page heap's and the huge table's locking, splitting and
// coalescing under contention.
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "stress_common.h"

namespace {

using jstest::Failures;
using jstest::kMiB;
using jstest::Tagged;

constexpr int kThreads = 4;
constexpr int kIterations = 600 / jstest::kStressDivisor;

void LargeHugeWorker(int id, Failures* failures) {
  jstest::Rng rng(static_cast<uint64_t>(id) + 77);
  Tagged live[3];
  for (int it = 0; it < kIterations; ++it) {
    Tagged& s = live[rng.Below(3)];
    if (s.p != nullptr) {
      if (jstest::CheckTagged(s) != s.n)
        failures->Add("thread ", id, ": block of ", s.n, " bytes corrupted");
      if (rng.Below(3) == 0) {
        size_t to = rng.Below(8) == 0 ? jstest::kHugeMin + rng.Below(16 * kMiB)
                                      : rng.Range(jstest::kMaxSmall + 1, 8 * kMiB);
        if (!jstest::ReallocTagged(s, to, id, failures)) {
          failures->Add("thread ", id, ": js_realloc to ", to, " failed");
          js_free(s.p);
          s = Tagged{};
        }
        continue;
      }
      js_free(s.p);
      s = Tagged{};
    } else {
      size_t n = rng.Below(8) == 0 ? jstest::kHugeMin + rng.Below(16 * kMiB)
                                   : rng.Range(jstest::kMaxSmall + 1, 8 * kMiB);
      s = jstest::AllocTagged(n);
      if (s.p == nullptr) failures->Add("thread ", id, ": allocation of ", n, " bytes failed");
    }
  }
  for (Tagged& s : live) {
    if (s.p == nullptr) continue;
    if (jstest::CheckTagged(s) != s.n) failures->Add("thread ", id, ": block corrupted at the end");
    js_free(s.p);
  }
}

}  // namespace

TEST(Stress, LargeAndHugeBlocksConcurrently) {
  Failures failures;
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) threads.emplace_back(LargeHugeWorker, i, &failures);
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.count(), 0) << failures.text();
}
