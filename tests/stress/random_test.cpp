// 8 threads doing random allocations and frees of 0..1 MiB (skewed small) through every
// js_* call, each block carrying a pattern derived from its address and size that is
// checked before the block is freed or reallocated.
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "stress_common.h"

namespace {

using jstest::Failures;
using jstest::Tagged;

constexpr int kThreads = 8;
constexpr int kSlots = 1024;
constexpr int kIterations = 1500000 / jstest::kStressDivisor;

void RandomWorker(int id, Failures* failures, std::atomic<long>* allocations) {
  jstest::Rng rng(static_cast<uint64_t>(id) * 7919 + 1);
  std::vector<Tagged> slots(kSlots);
  long allocated = 0;
  for (int it = 0; it < kIterations; ++it) {
    Tagged& s = slots[rng.Below(kSlots)];
    if (s.p != nullptr) {
      size_t ok = jstest::CheckTagged(s);
      if (ok != s.n)
        failures->Add("thread ", id, ": block ", s.p, " of ", s.n, " bytes corrupted at ", ok,
                      " (usable ", js_usable_size(s.p), ")");
      uint64_t op = rng.Below(10);
      if (op == 0) {
        // Reallocate: the head of the old pattern must move with the block.
        size_t to = jstest::SkewedSize(rng);
        if (!jstest::ReallocTagged(s, to, id, failures)) {
          // realloc(p, 0) may free p and return NULL; any other NULL is a failure.
          if (to != 0) {
            failures->Add("thread ", id, ": js_realloc(", s.p, ", ", to, ") failed");
            js_free(s.p);
          }
          s = Tagged{};
          continue;
        }
      } else if (op == 1) {
        js_free_sized(s.p, s.n);
        s = Tagged{};
      } else {
        js_free(s.p);
        s = Tagged{};
      }
    } else {
      size_t n = jstest::SkewedSize(rng);
      uint64_t op = rng.Below(10);
      void* p;
      if (op == 0) {
        p = js_calloc(1, n);
        if (p != nullptr) {
          size_t head = n < 512 ? n : 512;
          if (jstest::FindNonZero(p, head) != head ||
              jstest::FindNonZero(static_cast<char*>(p) + n - head, head) != head)
            failures->Add("thread ", id, ": js_calloc(1, ", n, ") not zeroed");
        }
      } else if (op == 1) {
        size_t align = size_t{16} << rng.Below(9);  // 16 B .. 4 KiB
        p = js_aligned_alloc(align, n);
        if (p != nullptr && !jstest::IsAligned(p, align))
          failures->Add("thread ", id, ": js_aligned_alloc(", align, ", ", n, ") = ", p);
      } else {
        p = js_malloc(n);
      }
      if (p == nullptr) {
        failures->Add("thread ", id, ": allocation of ", n, " bytes failed");
        continue;
      }
      if (n >= 16 && !jstest::IsAligned(p, 16))
        failures->Add("thread ", id, ": ", p, " not 16-byte aligned");
      s = Tagged{p, n};
      jstest::FillSparse(p, n, jstest::AddrSeed(p, n));
      ++allocated;
    }
  }
  for (Tagged& s : slots) {
    if (s.p == nullptr) continue;
    if (jstest::CheckTagged(s) != s.n)
      failures->Add("thread ", id, ": block ", s.p, " corrupted at the end");
    js_free(s.p);
  }
  allocations->fetch_add(allocated);
}

}  // namespace

TEST(Stress, RandomAllocFree8Threads) {
  Failures failures;
  std::atomic<long> allocations{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) threads.emplace_back(RandomWorker, i, &failures, &allocations);
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.count(), 0) << failures.text();
  // About half of the iterations allocate (the rest free or reallocate).
  EXPECT_GT(allocations.load(), static_cast<long>(kThreads) * kIterations / 3);
}
