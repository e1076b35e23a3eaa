// The per-CPU front-end (frontend/percpu_cache.h). This executable runs with
// JSMALLOC_FRONTEND=percpu (see CMakeLists.txt), so jsmalloc starts in per-CPU mode;
// the fallbacks are checked in child processes started with other environments.
//
// Not under ThreadSanitizer: TSan cannot follow rseq (it sees neither the restarts nor
// the asm's stores), so the TSan stress runs use per-thread mode.
#include "frontend/percpu_cache.h"

#include <gtest/gtest.h>

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "backend/page_heap.h"
#include "free_list.h"
#include "frontend/thread_cache.h"
#include "jsmalloc.h"
#include "middle/middle.h"
#include "options.h"
#include "os/cpu.h"
#include "size_class.h"
#include "test_env.h"

namespace jsmalloc {
namespace {

size_t ObjectsOut(size_t cls) {
  return g_central[cls].GetStats().objects_out - g_transfer[cls].count();
}

// The CPUs this process may run on.
std::vector<int> AllowedCpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> cpus;
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (CPU_ISSET(c, &set)) cpus.push_back(c);
  }
  return cpus;
}

// Pins the calling thread to one CPU, and waits until the kernel says it runs there
// (cpu_id is updated on the way back from the affinity call).
void PinTo(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  ASSERT_EQ(sched_setaffinity(0, sizeof(set), &set), 0);
  ASSERT_EQ(PercpuCacheCurrentCpu(), static_cast<uint32_t>(cpu));
}

void Unpin() {
  cpu_set_t set;
  CPU_ZERO(&set);
  for (int c : AllowedCpus()) CPU_SET(c, &set);
  for (int c = 0; c < CPU_SETSIZE && CPU_COUNT(&set) == 0; ++c) CPU_SET(c, &set);
  sched_setaffinity(0, sizeof(set), &set);
}

// Restores the whole process's affinity after a test that pins threads.
class PercpuTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::EnsureAllocator();
    ASSERT_TRUE(PercpuCacheEnabled()) << "this executable runs with JSMALLOC_FRONTEND=percpu";
    allowed_ = AllowedCpus();
    ASSERT_FALSE(allowed_.empty());
    js_release_free_memory();
  }
  void TearDown() override {
    Unpin();
    js_release_free_memory();
  }
  std::vector<int> allowed_;
};

TEST_F(PercpuTest, SlabsCoverEveryPossibleCpu) {
  // At least every CPU the process may run on; the stacks hold objects of every
  // small size up to a few KiB.
  EXPECT_GT(PercpuCacheCpus(), static_cast<uint32_t>(allowed_.back()));
  EXPECT_GT(PercpuCacheMaxCapacity(SizeToClass(16)), 0u);
  EXPECT_GT(PercpuCacheMaxCapacity(SizeToClass(4096)), 0u);
  js_free(js_malloc(16));  // this CPU's slab is set up
  const uint32_t cpu = PercpuCacheCurrentCpu();
  EXPECT_GT(PercpuCacheCapacity(cpu, SizeToClass(16)), 0u);
  EXPECT_LE(PercpuCacheCapacity(cpu, SizeToClass(16)), PercpuCacheMaxCapacity(SizeToClass(16)));
  EXPECT_LE(PercpuCacheCapacityBytes(cpu),
            static_cast<size_t>(GetOption(Option::kPercpuCacheBytes)));
  // Under GLIBC_TUNABLES=glibc.pthread.rseq=0 (the percpu-glibc-rseq-off run), glibc
  // registered nothing: every thread here registered itself.
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  if (tunables != nullptr && std::strstr(tunables, "glibc.pthread.rseq=0") != nullptr)
    EXPECT_EQ(os::GlibcRseqSize(), 0u);
  else
    EXPECT_GT(os::GlibcRseqSize(), 0u);
}

TEST_F(PercpuTest, PushThenPopGivesTheSameObjectBack) {
  PinTo(allowed_[0]);
  const size_t cls = SizeToClass(48);
  const uint32_t cpu = PercpuCacheCurrentCpu();
  void* p = js_malloc(48);
  ASSERT_NE(p, nullptr);
  uint32_t before = PercpuCacheLength(cpu, cls);
  static_cast<uintptr_t*>(p)[1] = FreeMarker(p);
  ASSERT_TRUE(PercpuCacheTestPush(cls, p));
  EXPECT_EQ(PercpuCacheLength(cpu, cls), before + 1);
  EXPECT_EQ(PercpuCacheTestPop(cls), p);
  EXPECT_EQ(PercpuCacheLength(cpu, cls), before);
  static_cast<uintptr_t*>(p)[1] = 0;
  js_free(p);
  // Freed on this CPU, it is the next one handed out here (last in, first out).
  EXPECT_EQ(js_malloc(48), p);
  js_free(p);
}

TEST_F(PercpuTest, FullStackOverflowsToTheMiddleTier) {
  PinTo(allowed_[0]);
  const size_t size = 1024;
  const size_t cls = SizeToClass(size);
  const uint32_t cpu = PercpuCacheCurrentCpu();
  const uint32_t cap = PercpuCacheMaxCapacity(cls);
  ASSERT_GT(cap, 0u);
  std::vector<void*> blocks(cap * 3);
  const size_t out_before = ObjectsOut(cls);
  for (void*& p : blocks) p = js_malloc(size);
  EXPECT_EQ(ObjectsOut(cls) - out_before, blocks.size() + PercpuCacheLength(cpu, cls));
  for (void* p : blocks) js_free(p);
  // The stack holds at most its capacity; the rest went back to the middle tier.
  uint32_t held = PercpuCacheLength(cpu, cls);
  EXPECT_GT(held, 0u);
  EXPECT_LE(held, PercpuCacheCapacity(cpu, cls));
  EXPECT_LE(PercpuCacheCapacity(cpu, cls), cap);
  EXPECT_EQ(ObjectsOut(cls) - out_before, held);
  // An empty stack refills from the middle tier: a batch at a time.
  js_release_free_memory();
  EXPECT_EQ(PercpuCacheLength(cpu, cls), 0u);
  void* p = js_malloc(size);
  EXPECT_EQ(PercpuCacheLength(cpu, cls),
            std::min(kClasses[cls].batch - 1, PercpuCacheCapacity(cpu, cls)));
  js_free(p);
}

TEST_F(PercpuTest, MigratedThreadUsesItsNewCpusStack) {
  if (allowed_.size() < 2) GTEST_SKIP() << "needs two CPUs";
  const size_t cls = SizeToClass(96);
  PinTo(allowed_[0]);
  const uint32_t first = PercpuCacheCurrentCpu();
  std::vector<void*> blocks(8);
  for (void*& p : blocks) p = js_malloc(96);
  for (void* p : blocks) js_free(p);
  const uint32_t on_first = PercpuCacheLength(first, cls);
  ASSERT_GE(on_first, blocks.size());
  PinTo(allowed_[1]);
  const uint32_t second = PercpuCacheCurrentCpu();
  ASSERT_NE(first, second);
  // Between pops the thread moved: its pops now come from the second CPU's stack, and
  // the first CPU's is left as it was.
  void* p = js_malloc(96);
  EXPECT_EQ(PercpuCacheLength(first, cls), on_first);
  for (void* b : blocks) EXPECT_NE(p, b);  // those are on the first CPU's stack
  js_free(p);
  EXPECT_GT(PercpuCacheLength(second, cls), 0u);
}

// malloc and free of a thread with a cache jump straight to the CPU's stack
// (ThreadCache::refill and overflow): each hit moves exactly one object, the thread's
// own lists stay empty at 0 of 0, and the middle tier sees none of it.
TEST_F(PercpuTest, HitPathMovesExactlyOneObjectPerCall) {
  PinTo(allowed_[0]);
  constexpr size_t kSize = 32;
  constexpr int kObjects = 20;
  const size_t cls = SizeToClass(kSize);
  const uint32_t cpu = PercpuCacheCurrentCpu();
  std::vector<void*> blocks(kObjects);
  for (void*& p : blocks) p = js_malloc(kSize);
  ThreadCache* tc = tl_thread.cache;
  ASSERT_NE(tc, &g_empty_cache);
  EXPECT_EQ(tc->refill, &PercpuRefill);
  EXPECT_EQ(tc->overflow, &PercpuOverflow);
  const uint32_t start = PercpuCacheLength(cpu, cls);
  ASSERT_LE(start + kObjects, PercpuCacheCapacity(cpu, cls)) << "the frees below must all hit";
  const size_t out = ObjectsOut(cls);
  for (int i = 0; i < kObjects; ++i) {
    js_free(blocks[i]);
    EXPECT_EQ(PercpuCacheLength(cpu, cls), start + i + 1);
    EXPECT_EQ(tc->lists[cls].head, nullptr);
    EXPECT_EQ(tc->lists[cls].budget, 0);
    EXPECT_EQ(static_cast<uintptr_t*>(blocks[i])[1], FreeMarker(blocks[i]));
  }
  // Last in, first out: the same objects in the reverse order, markers cleared.
  for (int i = kObjects - 1; i >= 0; --i) {
    void* p = js_malloc(kSize);
    EXPECT_EQ(p, blocks[i]);
    EXPECT_EQ(static_cast<uintptr_t*>(p)[1], 0u);
    EXPECT_EQ(PercpuCacheLength(cpu, cls), start + i);
    EXPECT_EQ(tc->lists[cls].head, nullptr);
  }
  EXPECT_EQ(ObjectsOut(cls), out);
  for (void* p : blocks) js_free(p);
}

// A thread moved to another CPU between every few calls: each object it holds is one
// no one else holds, its contents survive, and at the end every object the middle
// tier handed out is on some CPU's stack.
TEST_F(PercpuTest, HitPathStaysExactUnderMigration) {
  constexpr size_t kSize = 80;
  constexpr int kHeld = 8;
  constexpr int kRounds = 3000;
  const size_t cls = SizeToClass(kSize);
  const size_t out_before = ObjectsOut(cls);
  std::vector<unsigned char*> held;
  std::set<void*> live;
  int bad = 0;
  for (int r = 0; r < kRounds; ++r) {
    PinTo(allowed_[static_cast<size_t>(r) % allowed_.size()]);
    for (unsigned char* p : held) {
      for (size_t b = 16; b < kSize; ++b) bad += p[b] != static_cast<unsigned char>(b ^ r);
      live.erase(p);
      js_free(p);
    }
    held.clear();
    for (int i = 0; i < kHeld; ++i) {
      auto* p = static_cast<unsigned char*>(js_malloc(kSize));
      ASSERT_NE(p, nullptr);
      if (!live.insert(p).second) ++bad;  // handed out twice
      for (size_t b = 16; b < kSize; ++b) p[b] = static_cast<unsigned char>(b ^ (r + 1));
      held.push_back(p);
    }
  }
  for (unsigned char* p : held) js_free(p);
  EXPECT_EQ(bad, 0);
  size_t on_stacks = 0;
  for (uint32_t cpu = 0; cpu < PercpuCacheCpus(); ++cpu) on_stacks += PercpuCacheLength(cpu, cls);
  EXPECT_EQ(ObjectsOut(cls) - out_before, on_stacks);
}

TEST_F(PercpuTest, ReleaseFreeMemoryDrainsEveryCpu) {
  const size_t cls = SizeToClass(256);
  const size_t out_before = ObjectsOut(cls);
  for (int cpu : allowed_) {
    PinTo(cpu);
    std::vector<void*> blocks(20);
    for (void*& p : blocks) p = js_malloc(256);
    for (void* p : blocks) js_free(p);
  }
  Unpin();
  EXPECT_GT(PercpuCacheBytes(), 0u);
  js_stats_t s;
  js_get_stats(&s);
  // The thread caches hold nothing in this mode: what the front-end holds is per CPU.
  EXPECT_EQ(s.thread_cached, PercpuCacheBytes());
  js_release_free_memory();
  EXPECT_EQ(PercpuCacheBytes(), 0u);
  for (int cpu : allowed_) EXPECT_EQ(PercpuCacheBytesOf(static_cast<uint32_t>(cpu)), 0u);
  EXPECT_EQ(ObjectsOut(cls), out_before);
  js_get_stats(&s);
  EXPECT_EQ(s.thread_cached, 0u);
  char text[8192];
  js_stats_print(text, sizeof(text), 0);
  EXPECT_NE(std::strstr(text, "cpu 0 cache:"), nullptr) << text;
}

// A CPU whose threads went elsewhere holds nothing once its stacks were left alone for
// the decay time: the slow calls of a thread on another CPU drain it.
TEST_F(PercpuTest, IdleCpuIsDrainedOnTheDecayClock) {
  if (allowed_.size() < 2) GTEST_SKIP() << "needs two CPUs";
  const uint64_t saved_decay = g_page_heap.decay_ns();
  g_page_heap.set_decay_ns(20000000);  // 20 ms
  PinTo(allowed_[0]);
  const auto idle_cpu = static_cast<uint32_t>(allowed_[0]);
  std::vector<void*> blocks(20);
  for (void*& p : blocks) p = js_malloc(256);
  for (void* p : blocks) js_free(p);
  EXPECT_GT(PercpuCacheBytesOf(idle_cpu), 0u);
  PinTo(allowed_[1]);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (PercpuCacheBytesOf(idle_cpu) > 0 && std::chrono::steady_clock::now() < deadline) {
    for (int i = 0; i < 1000; ++i) js_free(js_malloc(64));
  }
  EXPECT_EQ(PercpuCacheBytesOf(idle_cpu), 0u) << "the idle CPU kept its stacks for 5 s";
  g_page_heap.set_decay_ns(saved_decay);
}

// ---- Run-time sizing of the stacks (cache_capacity.h) ----
// Also run with a small PERCPU_CACHE_BYTES (the percpu-small-cap tests), where the cap
// is reached at once and classes take capacity from each other. The decay clock is
// driven by hand (PercpuCacheDecayLookForTest): its own looks wait an hour here.
class PercpuSizing : public PercpuTest {
 protected:
  void SetUp() override {
    PercpuTest::SetUp();
    saved_decay_ = g_page_heap.decay_ns();
    g_page_heap.set_decay_ns(uint64_t{3600} * 1000000000);
    PinTo(allowed_[0]);
    js_free(js_malloc(16));  // this CPU's slab is set up
    cpu_ = PercpuCacheCurrentCpu();
  }
  void TearDown() override {
    g_page_heap.set_decay_ns(saved_decay_);
    PercpuTest::TearDown();
  }
  // n objects of `size` allocated, then freed, `rounds` times.
  static void Rounds(size_t size, size_t n, int rounds) {
    std::vector<void*> blocks(n);
    for (int r = 0; r < rounds; ++r) {
      for (void*& p : blocks) p = js_malloc(size);
      for (void* p : blocks) js_free(p);
    }
  }
  static size_t Cap() { return static_cast<size_t>(GetOption(Option::kPercpuCacheBytes)); }
  uint64_t saved_decay_ = 0;
  uint32_t cpu_ = 0;
};

// A stack that keeps running dry and overflowing grows until the working set fits, and
// then every call hits: the middle tier sees none of a round.
TEST_F(PercpuSizing, StackGrowsWhenItKeepsMissing) {
  const size_t cls = SizeToClass(32);
  const uint32_t start = PercpuCacheCapacity(cpu_, cls);
  const size_t n = std::min<size_t>(600, PercpuCacheMaxCapacity(cls) / 2);
  ASSERT_LT(start, n) << "the stack starts small";
  Rounds(32, n, 20);
  const uint32_t grown = PercpuCacheCapacity(cpu_, cls);
  EXPECT_GE(grown, n) << "grew from " << start;
  EXPECT_LE(grown, PercpuCacheMaxCapacity(cls));
  EXPECT_LE(PercpuCacheCapacityBytes(cpu_), Cap());
  const size_t out = ObjectsOut(cls);
  Rounds(32, n, 3);
  EXPECT_EQ(ObjectsOut(cls), out) << "a round of " << n << " missed with capacity " << grown;
  EXPECT_EQ(PercpuCacheCapacity(cpu_, cls), grown);
}

// Bursts of every class, up to 256 KiB: whatever grows, a CPU's stacks never may hold
// (nor hold) more than PERCPU_CACHE_BYTES, and the statistics say what they hold.
TEST_F(PercpuSizing, ByteCapIsNeverExceeded) {
  uint32_t start[kNumClasses];
  for (size_t cls = 1; cls < kNumClasses; ++cls) start[cls] = PercpuCacheCapacity(cpu_, cls);
  size_t grown = 0;
  for (int pass = 0; pass < 3; ++pass) {
    for (size_t cls = 1; cls < kNumClasses; ++cls) {
      const size_t size = kClasses[cls].size;
      const size_t n = std::clamp<size_t>((size_t{2} << 20) / size, 2, 64);
      Rounds(size, n, 3);
      const size_t capacity = PercpuCacheCapacityBytes(cpu_);
      grown += PercpuCacheCapacity(cpu_, cls) > start[cls] ? 1 : 0;
      ASSERT_LE(capacity, Cap()) << "after class " << cls << " (" << size << " B)";
      ASSERT_LE(PercpuCacheBytesOf(cpu_), capacity);
      ASSERT_LE(PercpuCacheLength(cpu_, cls), PercpuCacheCapacity(cpu_, cls));
    }
  }
  EXPECT_GT(grown, 0u) << "no stack grew: the test proves little";
  js_stats_t s;
  js_get_stats(&s);
  EXPECT_EQ(s.thread_cached, PercpuCacheBytes());
}

// A class left alone (no miss, its stack unmoved) is drained back to the middle tier
// and shrunk to its initial capacity at the second look of the decay clock after its
// last use, at the latest; a class in use between the looks keeps its objects.
TEST_F(PercpuSizing, IdleClassShrinksAndDrainsWithinTwoDecayLooks) {
  const size_t idle_cls = SizeToClass(256);
  const size_t busy_cls = SizeToClass(48);
  const size_t idle_out = ObjectsOut(idle_cls);
  const uint32_t start = PercpuCacheCapacity(cpu_, idle_cls);
  Rounds(256, 300, 10);
  const uint32_t grown = PercpuCacheCapacity(cpu_, idle_cls);
  ASSERT_GT(grown, start);
  ASSERT_GT(PercpuCacheLength(cpu_, idle_cls), 0u);
  Rounds(48, 20, 1);
  PercpuCacheDecayLookForTest();  // look 1: both were used since the last look
  EXPECT_GT(PercpuCacheLength(cpu_, idle_cls), 0u);
  EXPECT_EQ(PercpuCacheCapacity(cpu_, idle_cls), grown);
  void* busy = js_malloc(48);     // only the busy class between the looks
  PercpuCacheDecayLookForTest();  // look 2: the idle class goes back
  EXPECT_EQ(PercpuCacheLength(cpu_, idle_cls), 0u);
  EXPECT_LE(PercpuCacheCapacity(cpu_, idle_cls), start);
  EXPECT_EQ(ObjectsOut(idle_cls), idle_out) << "its objects are all in the middle tier";
  EXPECT_GT(PercpuCacheLength(cpu_, busy_cls), 0u);
  js_free(busy);
  js_stats_t s;
  js_get_stats(&s);
  EXPECT_EQ(s.thread_cached, PercpuCacheBytes());
  // Used again, it grows again.
  Rounds(256, 300, 10);
  EXPECT_GT(PercpuCacheCapacity(cpu_, idle_cls), start);
}

// A CPU none of whose stacks moved between two looks holds nothing after the second.
TEST_F(PercpuSizing, IdleCpuHoldsNothingAfterTwoDecayLooks) {
  if (allowed_.size() < 2) GTEST_SKIP() << "needs two CPUs";
  for (size_t size : {32, 256, 1024, 8192}) Rounds(size, 100, 5);
  ASSERT_GT(PercpuCacheBytesOf(cpu_), 0u);
  PinTo(allowed_[1]);
  PercpuCacheDecayLookForTest();
  PercpuCacheDecayLookForTest();
  EXPECT_EQ(PercpuCacheBytesOf(cpu_), 0u);
}

// 64 threads on the CPUs there are, each freeing what its neighbour allocated, every
// object's contents checked; then every object is counted back.
TEST_F(PercpuTest, SixtyFourThreadsCrossThreadFrees) {
  constexpr int kThreads = 64;
  constexpr int kRounds = 60;
  constexpr int kPerRound = 200;
  const size_t sizes[] = {16, 48, 200, 1000, 3000};
  size_t out_before[std::size(sizes)];
  for (size_t i = 0; i < std::size(sizes); ++i) out_before[i] = ObjectsOut(SizeToClass(sizes[i]));
  std::vector<std::vector<std::atomic<void*>>> mailboxes(kThreads);
  for (auto& m : mailboxes) m = std::vector<std::atomic<void*>>(kPerRound);
  std::atomic<int> bad{0};
  std::barrier sync(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      uint64_t seed = static_cast<uint64_t>(t) * 7919 + 1;
      for (int r = 0; r < kRounds; ++r) {
        for (int i = 0; i < kPerRound; ++i) {
          seed = seed * 6364136223846793005ull + 1442695040888963407ull;
          size_t size = sizes[(seed >> 33) % std::size(sizes)];
          auto* p = static_cast<unsigned char*>(js_malloc(size));
          uint32_t tag = static_cast<uint32_t>(t * 100000 + r * 1000 + i);
          std::memcpy(p, &tag, sizeof(tag));
          std::memset(p + 4, static_cast<int>(tag & 0xFF), size - 4);
          mailboxes[t][i].store(p, std::memory_order_release);
        }
        sync.arrive_and_wait();
        // Free the neighbour's objects, checking they are as it left them.
        auto& box = mailboxes[(t + 1) % kThreads];
        for (int i = 0; i < kPerRound; ++i) {
          auto* p = static_cast<unsigned char*>(box[i].load(std::memory_order_acquire));
          uint32_t tag;
          std::memcpy(&tag, p, sizeof(tag));
          size_t usable = js_usable_size(p);
          uint32_t want = static_cast<uint32_t>(((t + 1) % kThreads) * 100000 + r * 1000 + i);
          if (tag != want || p[usable > 5 ? 5 : 4] != static_cast<unsigned char>(tag & 0xFF))
            bad.fetch_add(1);
          js_free(p);
        }
        sync.arrive_and_wait();
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad.load(), 0);
  js_release_free_memory();
  for (size_t i = 0; i < std::size(sizes); ++i)
    EXPECT_EQ(ObjectsOut(SizeToClass(sizes[i])), out_before[i]) << sizes[i];
}

void NoteSignal(int) {}

// Sections interrupted on purpose: a signal storm at four threads that allocate and
// free, while a fifth moves them between CPUs in a loop. Every object a thread holds
// is unique among all live objects (none handed out twice), and after the threads
// end and the caches are drained every object is back (none lost).
TEST_F(PercpuTest, PreemptedAndMigratedSectionsLoseNothing) {
  constexpr int kThreads = 4;
  constexpr int kOps = 500000;
  constexpr int kHeld = 64;
  const size_t cls = SizeToClass(64);
  const size_t out_before = ObjectsOut(cls);
  struct sigaction sa {};
  sa.sa_handler = NoteSignal;
  sa.sa_flags = SA_RESTART;
  struct sigaction old {};
  ASSERT_EQ(sigaction(SIGUSR1, &sa, &old), 0);
  std::mutex live_lock;
  std::set<void*> live;
  std::atomic<int> twice{0}, running{kThreads};
  std::vector<pthread_t> handles(kThreads);
  std::vector<std::thread> threads;
  std::atomic<int> started{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      handles[t] = pthread_self();
      started.fetch_add(1);
      void* held[kHeld] = {};
      for (int i = 0; i < kOps; ++i) {
        int slot = i % kHeld;
        if (held[slot] != nullptr) {
          {
            std::lock_guard g(live_lock);
            live.erase(held[slot]);
          }
          js_free(held[slot]);
        }
        held[slot] = js_malloc(64);
        std::lock_guard g(live_lock);
        if (!live.insert(held[slot]).second) twice.fetch_add(1);
      }
      for (void* p : held) {
        {
          std::lock_guard g(live_lock);
          live.erase(p);
        }
        js_free(p);
      }
      running.fetch_sub(1);
    });
  }
  while (started.load() < kThreads) sched_yield();
  uint64_t signals = 0, moves = 0;
  while (running.load() > 0) {
    for (int t = 0; t < kThreads; ++t) {
      if (pthread_kill(handles[t], SIGUSR1) == 0) ++signals;
      if (allowed_.size() > 1 && signals % 8 == 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(allowed_[(signals / 8 + static_cast<uint64_t>(t)) % allowed_.size()], &set);
        if (pthread_setaffinity_np(handles[t], sizeof(set), &set) == 0) ++moves;
      }
    }
  }
  for (auto& th : threads) th.join();
  sigaction(SIGUSR1, &old, nullptr);
  EXPECT_EQ(twice.load(), 0);
  EXPECT_TRUE(live.empty());
  EXPECT_GT(signals, 100u);
  js_release_free_memory();
  EXPECT_EQ(ObjectsOut(cls), out_before);
}

TEST_F(PercpuTest, ForkChildCachesAreConsistent) {
  // Stacks grown past their initial capacity, on every CPU, before the forks.
  for (int cpu : allowed_) {
    PinTo(cpu);
    std::vector<void*> burst(500);
    for (int r = 0; r < 5; ++r) {
      for (void*& p : burst) p = js_malloc(64);
      for (void* p : burst) js_free(p);
    }
  }
  Unpin();
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&] {
      void* held[32] = {};
      for (int i = 0; !stop.load(std::memory_order_relaxed); ++i) {
        js_free(held[i % 32]);
        held[i % 32] = js_malloc(16 + (i % 7) * 40);
      }
      for (void* p : held) js_free(p);
    });
  }
  for (int f = 0; f < 10; ++f) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      // The child: every object handed out once, every stack usable, and drained.
      std::set<void*> seen;
      bool ok = true;
      std::vector<void*> blocks;
      for (int i = 0; i < 5000; ++i) {
        void* p = js_malloc(16 + (i % 7) * 40);
        ok = ok && p != nullptr && seen.insert(p).second;
        std::memset(p, 0x5A, 16);
        blocks.push_back(p);
      }
      for (void* p : blocks) js_free(p);
      // The stacks' run-time capacities came across whole.
      for (uint32_t cpu = 0; cpu < PercpuCacheCpus(); ++cpu) {
        ok = ok && PercpuCacheCapacityBytes(cpu) <=
                       static_cast<size_t>(GetOption(Option::kPercpuCacheBytes));
        ok = ok && PercpuCacheBytesOf(cpu) <= PercpuCacheCapacityBytes(cpu);
      }
      js_release_free_memory();
      ok = ok && PercpuCacheBytes() == 0;
      _exit(ok ? 0 : 1);
    }
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "fork " << f;
  }
  stop.store(true);
  for (auto& th : threads) th.join();
}

// ---- Fallbacks and the mode in force, in child processes ----

struct ChildResult {
  int status = -1;
  std::string err;  // its stderr
};

// Runs this executable's PercpuChild.Report in a child with `env` added, optionally
// with a seccomp filter that refuses the rseq syscall with EPERM.
ChildResult RunChild(const std::vector<std::string>& env, bool refuse_rseq) {
  int fds[2];
  ChildResult result;
  if (pipe(fds) != 0) return result;
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], 2);
    close(fds[0]);
    close(fds[1]);
    for (const char* name :
         {"JSMALLOC_FRONTEND", "JSMALLOC_VERBOSE", "JSMALLOC_RSEQ", "GLIBC_TUNABLES"})
      unsetenv(name);
    for (const std::string& e : env) putenv(const_cast<char*>(e.c_str()));
    setenv("JSTEST_PERCPU_CHILD", "1", 1);
    if (refuse_rseq) {
      sock_filter filter[] = {
          BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
          BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_rseq, 0, 1),
          BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
          BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      };
      sock_fprog prog = {static_cast<unsigned short>(std::size(filter)), filter};
      if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
          prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)
        _exit(97);
    }
    execl("/proc/self/exe", "percpu_child", "--gtest_filter=PercpuChild.Report", nullptr);
    _exit(98);
  }
  close(fds[1]);
  char buf[4096];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof(buf))) > 0) result.err.append(buf, static_cast<size_t>(n));
  close(fds[0]);
  waitpid(pid, &result.status, 0);
  return result;
}

// In a child: says which mode runs and whether pushes and pops work there.
TEST(PercpuChild, Report) {
  // Only run by the tests below (CTest leaves it out): on its own it has nothing to say.
  ASSERT_NE(std::getenv("JSTEST_PERCPU_CHILD"), nullptr) << "run by PercpuFallback.*";
  testing::EnsureAllocator();
  std::vector<void*> blocks;
  for (int i = 0; i < 1000; ++i) blocks.push_back(js_malloc(32));
  for (void* p : blocks) js_free(p);
  std::string line = PercpuCacheEnabled() ? "mode=percpu" : "mode=thread";
  line += PercpuCacheBytes() > 0 ? " cached=percpu\n" : " cached=none\n";
  ASSERT_EQ(write(2, line.data(), line.size()), static_cast<ssize_t>(line.size()));
}

bool Contains(const std::string& s, const char* what) {
  return s.find(what) != std::string::npos;
}

TEST(PercpuFallback, PercpuRunsWhenAskedFor) {
  ChildResult r = RunChild({"JSMALLOC_FRONTEND=percpu", "JSMALLOC_VERBOSE=1"}, false);
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(Contains(r.err, "jsmalloc: front-end percpu (")) << r.err;
  EXPECT_TRUE(Contains(r.err, "mode=percpu cached=percpu")) << r.err;
}

TEST(PercpuFallback, GlibcRegistrationOffRegistersItself) {
  ChildResult r = RunChild(
      {"JSMALLOC_FRONTEND=percpu", "JSMALLOC_VERBOSE=1", "GLIBC_TUNABLES=glibc.pthread.rseq=0"},
      false);
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(Contains(r.err, "mode=percpu cached=percpu")) << r.err;
}

TEST(PercpuFallback, NoRseqFallsBackToThreadCaches) {
  ChildResult r =
      RunChild({"JSMALLOC_FRONTEND=percpu", "JSMALLOC_VERBOSE=1", "JSMALLOC_RSEQ=0"}, false);
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(Contains(r.err, "jsmalloc: front-end thread: percpu asked for, but rseq turned off"))
      << r.err;
  EXPECT_TRUE(Contains(r.err, "mode=thread cached=none")) << r.err;
}

TEST(PercpuFallback, SeccompRefusingRseqFallsBackToThreadCaches) {
  ChildResult r = RunChild({"JSMALLOC_FRONTEND=percpu", "JSMALLOC_VERBOSE=1"}, true);
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(Contains(r.err, "percpu asked for, but rseq is refused (EPERM: a seccomp filter)"))
      << r.err;
  EXPECT_TRUE(Contains(r.err, "mode=thread")) << r.err;
}

TEST(PercpuFallback, BadFrontendValueWarnsAndKeepsTheDefault) {
  ChildResult r = RunChild({"JSMALLOC_FRONTEND=percore", "JSMALLOC_VERBOSE=1"}, false);
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(Contains(r.err,
                       "jsmalloc: ignoring JSMALLOC_FRONTEND=percore (expected one of "
                       "thread|percpu)"))
      << r.err;
  EXPECT_TRUE(Contains(r.err, "jsmalloc: front-end thread\n")) << r.err;
  EXPECT_TRUE(Contains(r.err, "mode=thread")) << r.err;
}

TEST(PercpuFallback, DefaultIsThread) {
  ChildResult r = RunChild({"JSMALLOC_VERBOSE=1"}, false);
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(Contains(r.err, "jsmalloc: front-end thread\n")) << r.err;
  EXPECT_TRUE(Contains(r.err, "mode=thread cached=none")) << r.err;
}

}  // namespace
}  // namespace jsmalloc
