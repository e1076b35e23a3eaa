// Cross-thread frees: blocks allocated on one thread are verified and freed on another.
#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "stress_common.h"

namespace {

using jstest::Failures;
using jstest::kMiB;
using jstest::Tagged;

// Single-producer single-consumer ring of blocks.
class BlockQueue {
 public:
  bool TryPush(const Tagged& t) {
    size_t head = head_.load(std::memory_order_relaxed);
    if (head - tail_.load(std::memory_order_acquire) == kCapacity) return false;
    ring_[head % kCapacity] = t;
    head_.store(head + 1, std::memory_order_release);
    return true;
  }
  bool TryPop(Tagged* t) {
    size_t tail = tail_.load(std::memory_order_relaxed);
    if (tail == head_.load(std::memory_order_acquire)) return false;
    *t = ring_[tail % kCapacity];
    tail_.store(tail + 1, std::memory_order_release);
    return true;
  }
  void Push(const Tagged& t) {
    while (!TryPush(t)) std::this_thread::yield();
  }
  Tagged Pop() {
    Tagged t;
    while (!TryPop(&t)) std::this_thread::yield();
    return t;
  }

 private:
  static constexpr size_t kCapacity = 1024;
  alignas(64) std::atomic<size_t> head_{0};
  alignas(64) std::atomic<size_t> tail_{0};
  Tagged ring_[kCapacity];
};

}  // namespace

TEST(Stress, ProducerConsumerCrossThreadFree) {
  constexpr int kBlocks = 3000000 / jstest::kStressDivisor;
  Failures failures;
  auto queue = std::make_unique<BlockQueue>();
  const js_stats_t before = jstest::GetStats();
  std::atomic<long> consumed{0};

  std::thread producer([&] {
    jstest::Rng rng(11);
    for (int i = 0; i < kBlocks; ++i) {
      Tagged t = jstest::AllocTagged(jstest::SkewedSize(rng));
      if (t.p == nullptr) {
        failures.Add("producer: allocation of ", t.n, " bytes failed");
        continue;
      }
      queue->Push(t);
    }
    queue->Push(Tagged{nullptr, SIZE_MAX});  // end marker
  });
  std::thread consumer([&] {
    for (;;) {
      Tagged t = queue->Pop();
      if (t.p == nullptr) break;
      size_t ok = jstest::CheckTagged(t);
      if (ok != t.n) failures.Add("consumer: block ", t.p, " of ", t.n, " bytes corrupted at ", ok);
      js_free(t.p);
      consumed.fetch_add(1, std::memory_order_relaxed);
    }
  });
  producer.join();
  consumer.join();

  EXPECT_EQ(failures.count(), 0) << failures.text();
  EXPECT_EQ(consumed.load(), kBlocks - failures.count());
  // Memory freed on the consumer went back to the allocator: gigabytes went through,
  // at most a queue's worth (1024 blocks) was live at once.
  const js_stats_t after = jstest::GetStats();
  EXPECT_LT(after.committed, before.committed + 256 * kMiB)
      << "committed " << before.committed << " -> " << after.committed;
}

// Four threads in a ring: each allocates blocks for its successor and frees the blocks
// its predecessor allocated, so remote frees from several threads interleave.
TEST(Stress, RingOfThreadsCrossThreadFree) {
  constexpr int kThreads = 4;
  constexpr int kBlocksPerThread = 1000000 / jstest::kStressDivisor;
  Failures failures;
  std::vector<std::unique_ptr<BlockQueue>> queues;
  for (int i = 0; i < kThreads; ++i) queues.push_back(std::make_unique<BlockQueue>());
  std::atomic<long> freed{0};
  std::atomic<bool> give_up{false};

  auto body = [&](int id) {
    BlockQueue& out = *queues[(id + 1) % kThreads];
    BlockQueue& in = *queues[id];
    jstest::Rng rng(static_cast<uint64_t>(id) + 100);
    int sent = 0, received = 0;
    Tagged pending;
    while ((sent < kBlocksPerThread || received < kBlocksPerThread) && !give_up.load()) {
      bool progress = false;
      if (sent < kBlocksPerThread) {
        if (pending.p == nullptr) {
          pending = jstest::AllocTagged(jstest::SkewedSize(rng, 64 * 1024));
          if (pending.p == nullptr) {
            failures.Add("thread ", id, ": allocation of ", pending.n, " bytes failed");
            give_up.store(true);
            break;
          }
        }
        if (out.TryPush(pending)) {
          pending = Tagged{};
          ++sent;
          progress = true;
        }
      }
      Tagged t;
      if (received < kBlocksPerThread && in.TryPop(&t)) {
        ++received;
        progress = true;
        size_t ok = jstest::CheckTagged(t);
        if (ok != t.n)
          failures.Add("thread ", id, ": block ", t.p, " of ", t.n, " corrupted at ", ok);
        js_free(t.p);
        freed.fetch_add(1, std::memory_order_relaxed);
      }
      if (!progress) std::this_thread::yield();
    }
    if (pending.p != nullptr) js_free(pending.p);
  };
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) threads.emplace_back(body, i);
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.count(), 0) << failures.text();
  EXPECT_EQ(freed.load(), static_cast<long>(kThreads) * kBlocksPerThread);
}

namespace {

// Regression (found by bench xmalloc-t64): many threads start together on size classes
// nobody used yet. A span one thread adds to a central free list can be taken whole by
// another before the first relocks; that must never surface as a NULL from malloc.
TEST(Stress, ManyThreadsRaceForFreshSpans) {
  constexpr int kThreads = 64;
  Failures failures;
  // Each round uses a size class nobody has used yet, so its central free list starts
  // empty and all threads ask it for a first run at the same moment; a new cache takes
  // the whole rest of a span as its run, so fresh spans are emptied as fast as they come.
  for (size_t size = 16; size <= 128 * 1024; size += size / 8 + 16) {
    std::atomic<int> ready{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        ready.fetch_add(1);
        while (ready.load() < kThreads) std::this_thread::yield();
        void* b = js_malloc(size);
        if (b == nullptr) failures.Add("thread ", t, ": js_malloc(", size, ") returned NULL");
        js_free(b);
      });
    }
    for (auto& th : threads) th.join();
  }
  EXPECT_EQ(failures.count(), 0) << failures.text();
}

}  // namespace
