// fork() from a threaded program while other threads allocate: the child's allocator
// works (it allocates and frees a few thousand blocks, and frees blocks the parent's
// forking thread allocated before the fork) and the child exits 0.
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "stress_common.h"

namespace {

using jstest::Failures;
using jstest::Tagged;

constexpr int kForks = 20;
constexpr int kWorkers = 3;
constexpr int kChildBlocks = 3000;

// Keeps allocating and freeing (small, some large) until told to stop.
void BusyWorker(int id, const std::atomic<bool>* stop, std::atomic<long>* progress,
                Failures* failures) {
  jstest::Rng rng(static_cast<uint64_t>(id) + 500);
  Tagged ring[64];
  unsigned k = 0;
  while (!stop->load(std::memory_order_relaxed)) {
    Tagged& slot = ring[k++ % 64];
    if (slot.p != nullptr) {
      if (jstest::CheckTagged(slot) != slot.n) failures->Add("worker ", id, ": block corrupted");
      js_free(slot.p);
    }
    if (k % 256 == 0) {  // now and then a huge block (own mapping, the huge table's lock)
      void* h = js_malloc(jstest::kHugeMin);
      if (h == nullptr) failures->Add("worker ", id, ": huge allocation failed");
      js_free(h);
    }
    size_t n =
        rng.Below(50) == 0 ? 200 * 1024 + rng.Below(100000) : jstest::SkewedSize(rng, 64 * 1024);
    slot = jstest::AllocTagged(n);
    if (slot.p == nullptr) failures->Add("worker ", id, ": allocation failed");
    progress->fetch_add(1, std::memory_order_relaxed);
  }
  for (Tagged& t : ring)
    if (t.p != nullptr) js_free(t.p);
}

// The child's work; returns its exit code (0 = allocator fine).
int ChildWork(std::vector<Tagged>& inherited, uint64_t seed) {
  alarm(30);  // a deadlocked child dies of SIGALRM instead of hanging the test
  int bad = 0;
  for (Tagged& t : inherited) {
    if (t.p == nullptr || jstest::CheckTagged(t) != t.n) bad |= 1;
    js_free(t.p);
  }
  jstest::Rng rng(seed);
  std::vector<Tagged> mine;
  mine.reserve(kChildBlocks);
  for (int i = 0; i < kChildBlocks; ++i) {
    size_t n = i % 500 == 0 ? 300 * 1024 : jstest::SkewedSize(rng);
    Tagged t = jstest::AllocTagged(n);
    if (t.p == nullptr) {
      bad |= 2;
      continue;
    }
    mine.push_back(t);
    if (i % 3 == 2) {  // free some along the way, in a different order
      size_t idx = rng.Below(mine.size());
      Tagged victim = mine[idx];
      mine[idx] = mine.back();
      mine.pop_back();
      if (jstest::CheckTagged(victim) != victim.n) bad |= 4;
      js_free(victim.p);
    }
  }
  for (Tagged& t : mine) {
    if (jstest::CheckTagged(t) != t.n) bad |= 4;
    js_free(t.p);
  }
  Tagged huge = jstest::AllocTagged(jstest::kHugeMin);
  if (huge.p == nullptr)
    bad |= 8;
  else
    js_free(huge.p);
  return bad;
}

// Stops and joins the workers however the test body is left.
struct Workers {
  ~Workers() { Stop(); }
  void Stop() {
    stop.store(true);
    for (auto& t : threads)
      if (t.joinable()) t.join();
  }
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
};

}  // namespace

TEST(Stress, ForkWhileOtherThreadsAllocate) {
  Failures failures;
  std::atomic<long> progress{0};
  Workers workers;
  for (int i = 0; i < kWorkers; ++i)
    workers.threads.emplace_back(BusyWorker, i, &workers.stop, &progress, &failures);

  for (int round = 0; round < kForks; ++round) {
    // Make sure the workers are running (allocating) when we fork.
    long seen = progress.load();
    while (progress.load() < seen + 100) std::this_thread::yield();

    std::vector<Tagged> inherited;
    for (size_t n : {size_t{40}, size_t{700}, size_t{9000}, size_t{300 * 1024}})
      inherited.push_back(jstest::AllocTagged(n));

    pid_t pid = fork();
    ASSERT_GE(pid, 0) << "fork failed";
    if (pid == 0) _exit(ChildWork(inherited, static_cast<uint64_t>(round)));

    int status = 0;
    pid_t waited;
    do {
      waited = waitpid(pid, &status, 0);
    } while (waited < 0 && errno == EINTR);
    ASSERT_EQ(waited, pid);
    if (WIFSIGNALED(status)) {
      ADD_FAILURE() << "fork round " << round << ": child killed by signal " << WTERMSIG(status)
                    << (WTERMSIG(status) == SIGALRM ? " (deadlocked in the allocator?)" : "");
    } else {
      EXPECT_TRUE(WIFEXITED(status));
      EXPECT_EQ(WEXITSTATUS(status), 0)
          << "fork round " << round
          << ": child exit code (1 inherited block bad, 2 allocation failed, "
             "4 block corrupted, 8 huge allocation failed)";
    }
    for (Tagged& t : inherited) {
      ASSERT_NE(t.p, nullptr);
      EXPECT_EQ(jstest::CheckTagged(t), t.n);
      js_free(t.p);
    }
  }
  workers.Stop();
  EXPECT_EQ(failures.count(), 0) << failures.text();
  EXPECT_GT(progress.load(), 100L * kForks);
}
