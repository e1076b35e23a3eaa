// JSMALLOC_BACKGROUND_THREAD: a thread that gives idle memory back to the OS on the
// decay clock, so that a program that stops calling the allocator still gets it back.
// Each case runs in a child process started with its options (jsmalloc reads them once,
// at start-up); the child does one workload, writes what it saw as "key=value" words on
// stderr, and the test judges:
//
//   release  a burst of 64 MiB of 1-4 KiB blocks is freed, then, with no further call
//            into the allocator, RSS is watched until it falls under a quarter of what
//            the burst added, or until a deadline
//   threads  the main thread and four others allocate and free; once the others are
//            gone, how many tasks are named jsmalloc-bg, how many thread caches there
//            are once it made a release pass, and which signals it blocks
//   fork     forks while the background thread runs and three threads allocate; each
//            child checks that it has no background thread before it allocates, then
//            makes and frees a burst (of small blocks, or of large ones only) and watches
//            its RSS fall as above, then counts its background threads; the parent
//            counts its own at the end
//   hugepages  160 MiB of 64 B objects are allocated and written, then, with no call
//            that allocates, the heap's count of bytes on hugepages is watched until it
//            covers what the background thread should collapse, or until a deadline
#include <dirent.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "frontend/thread_cache.h"
#include "jsmalloc.h"
#include "test_main.h"
#include "test_util.h"

namespace {

using jstest::kKiB;
using jstest::kMiB;

constexpr size_t kBurstBytes = 64 * kMiB;
constexpr size_t kMaxBlocks = kBurstBytes / kKiB + 1;
constexpr uint64_t kDeadlineNs = 4000000000u;
constexpr uint64_t kPollNs = 2000000;

void* g_blocks[kMaxBlocks];  // static: taking the burst's pointers allocates nothing

uint64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}

void Nap(uint64_t ns) {
  timespec ts{0, static_cast<long>(ns)};
  nanosleep(&ts, nullptr);
}

// Writes the whole text to stderr (which the test reads) with write(2): a fork child's
// line then neither allocates nor repeats output the parent had buffered.
void Say(const char* text) {
  size_t len = strlen(text);
  while (len > 0) {
    ssize_t n = write(2, text, len);
    if (n <= 0 && errno != EINTR) return;
    if (n > 0) {
      text += n;
      len -= static_cast<size_t>(n);
    }
  }
}

struct BurstResult {
  size_t baseline = 0;  // RSS before the burst
  size_t peak = 0;      // with the burst allocated and written
  size_t final = 0;     // when the watch ended
  uint64_t ms = 0;      // how long the watch took
};

// Allocates and writes kBurstBytes in blocks of min_size to max_size bytes, frees them,
// then, calling nothing in the allocator, watches RSS until it is below baseline + a
// quarter of what the burst added, or kDeadlineNs has passed.
BurstResult BurstAndWatch(uint64_t seed, size_t min_size, size_t max_size) {
  BurstResult r;
  memset(g_blocks, 0, sizeof(g_blocks));
  // Free memory still resident (a fork child's, from the threads it did not inherit)
  // would be reused by the burst, which would then add less than it allocates, by how
  // much depending on timing: it goes first, so the baseline is what is in use.
  js_release_free_memory();
  r.baseline = jstest::RssBytes();
  jstest::Rng rng(seed);
  size_t count = 0;
  for (size_t total = 0; total < kBurstBytes && count < kMaxBlocks; ++count) {
    const size_t size = min_size + rng.Below(max_size - min_size + 1);
    void* p = js_malloc(size);
    if (p == nullptr) abort();
    memset(p, static_cast<int>(count) | 1, size);
    g_blocks[count] = p;
    total += size;
  }
  r.peak = jstest::RssBytes();
  for (size_t i = 0; i < count; ++i) js_free(g_blocks[i]);
  const size_t added = r.peak > r.baseline ? r.peak - r.baseline : 0;
  const uint64_t start = NowNs();
  for (;;) {
    r.final = jstest::RssBytes();
    r.ms = (NowNs() - start) / 1000000u;
    if (r.final < r.baseline + added / 4 || NowNs() - start > kDeadlineNs) break;
    Nap(kPollNs);
  }
  return r;
}

void SayBurst(const char* prefix, const BurstResult& r) {
  char line[256];
  snprintf(line, sizeof(line), "%sbaseline=%zu peak=%zu final=%zu ms=%llu\n", prefix, r.baseline,
           r.peak, r.final, static_cast<unsigned long long>(r.ms));
  Say(line);
}

struct TaskCount {
  int background = 0;       // tasks named jsmalloc-bg
  int others = 0;           // the rest, the main thread not counted
  long background_tid = 0;  // the last of the former
};

// Counts this process's tasks by name. Allocates nothing (getdents64, not opendir), so
// that it adds no slow call of its own to what a child is watched doing.
TaskCount CountTasks() {
  TaskCount c;
  const pid_t self = getpid();
  const int dir = open("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) abort();
  alignas(8) char entries[8192];
  for (;;) {
    const ssize_t len = getdents64(dir, entries, sizeof(entries));
    if (len <= 0) break;
    for (ssize_t at = 0; at < len;) {
      const auto* e = reinterpret_cast<const dirent64*>(entries + at);
      at += e->d_reclen;
      if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
      if (atoi(e->d_name) == self) continue;
      char path[320];
      snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
      char name[32] = {};
      const int fd = open(path, O_RDONLY | O_CLOEXEC);
      if (fd < 0) continue;  // it just exited
      const ssize_t n = read(fd, name, sizeof(name) - 1);
      close(fd);
      if (n > 0 && name[n - 1] == '\n') name[n - 1] = '\0';
      if (strcmp(name, "jsmalloc-bg") == 0) {
        ++c.background;
        c.background_tid = atol(e->d_name);
      } else {
        ++c.others;
      }
    }
  }
  close(dir);
  return c;
}

// The number on the line "<field>:" of /proc/self/task/<tid>/status, in the given base;
// 0 when there is none.
unsigned long long TaskStatusField(long tid, const char* field, int base) {
  char path[64];
  snprintf(path, sizeof(path), "/proc/self/task/%ld/status", tid);
  char text[4096] = {};
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  ssize_t n = read(fd, text, sizeof(text) - 1);
  close(fd);
  if (n <= 0) return 0;
  char key[64];
  snprintf(key, sizeof(key), "\n%s:", field);
  const char* at = strstr(text, key);
  return at == nullptr ? 0 : strtoull(at + strlen(key), nullptr, base);
}

// Waits (up to the deadline) until no task but the main thread and background threads
// is left and, if at_least_one, there is a background thread; returns the last count.
TaskCount SettledTaskCount(bool at_least_one) {
  const uint64_t start = NowNs();
  TaskCount c;
  for (;;) {
    c = CountTasks();
    bool settled = c.others == 0 && (!at_least_one || c.background > 0);
    if (settled || NowNs() - start > kDeadlineNs) return c;
    Nap(kPollNs);
  }
}

bool BackgroundWanted() {
  const char* v = getenv("JSMALLOC_BACKGROUND_THREAD");
  return v != nullptr && atoi(v) != 0;
}

// Allocates and frees enough for many slow calls of the thread's cache.
void Churn(uint64_t seed) {
  jstest::Rng rng(seed);
  std::vector<void*> held;
  held.reserve(4096);
  for (int round = 0; round < 4; ++round) {
    for (int i = 0; i < 4096; ++i) {
      void* p = js_malloc(jstest::SkewedSize(rng, 64 * kKiB));
      if (p == nullptr) abort();
      held.push_back(p);
    }
    for (void* p : held) js_free(p);
    held.clear();
  }
}

}  // namespace

// RSS then moves in 4 KiB steps, and hugepages the heap keeps do not hide a release.
JSTEST_CHILD_MAIN(background_release) {
  jstest::DisableTransparentHugePages();
  SayBurst("", BurstAndWatch(1, kKiB, 4 * kKiB));
  return 0;
}

JSTEST_CHILD_MAIN(background_threads) {
  Churn(1);
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) threads.emplace_back(Churn, static_cast<uint64_t>(i) + 2);
  for (auto& t : threads) t.join();
  Churn(10);
  const TaskCount c = SettledTaskCount(BackgroundWanted());
  unsigned long long blocked = 0;
  if (c.background_tid != 0) {
    // Two sleeps begun: it has made a release pass (it would have a thread cache now if
    // the pass allocated).
    const uint64_t start = NowNs();
    while (TaskStatusField(c.background_tid, "voluntary_ctxt_switches", 10) < 3 &&
           NowNs() - start < kDeadlineNs) {
      Nap(kPollNs);
    }
    blocked = TaskStatusField(c.background_tid, "SigBlk", 16);
  }
  char line[160];
  snprintf(line, sizeof(line), "background=%d others=%d caches=%zu blocked=%llx\n", c.background,
           c.others, jsmalloc::ThreadCacheCount(), blocked);
  Say(line);
  return 0;
}

namespace {

void BusyWorker(int id, const std::atomic<bool>* stop, std::atomic<long>* progress) {
  jstest::Rng rng(static_cast<uint64_t>(id) + 100);
  void* ring[64] = {};
  for (unsigned k = 0; !stop->load(std::memory_order_relaxed); ++k) {
    void*& slot = ring[k % 64];
    js_free(slot);
    slot = js_malloc(jstest::SkewedSize(rng, 64 * kKiB));
    progress->fetch_add(1, std::memory_order_relaxed);
  }
  for (void* p : ring) js_free(p);
}

// The child side of Fork: says what it saw, then _exit(0).
[[noreturn]] void ForkChild(int round) {
  alarm(30);  // a child deadlocked in the allocator dies instead of hanging the test
  // Before any allocation: the parent's background thread did not come along.
  TaskCount before = CountTasks();
  // Every other child makes large blocks only: no call of its own reaches a thread
  // cache's slow path, so the large-block path must start the thread.
  const bool large = round % 2 == 1;
  BurstResult burst = BurstAndWatch(static_cast<uint64_t>(round) + 50, large ? 256 * kKiB : kKiB,
                                    large ? kMiB : 4 * kKiB);
  TaskCount after = SettledTaskCount(true);
  char prefix[160];
  snprintf(prefix, sizeof(prefix),
           "child=%d blocks=%s background_before=%d background=%d others=%d ", round,
           large ? "large" : "small", before.background, after.background, after.others);
  SayBurst(prefix, burst);
  _exit(0);
}

}  // namespace

JSTEST_CHILD_MAIN(background_fork) {
  jstest::DisableTransparentHugePages();  // inherited by the fork children
  Churn(1);
  const TaskCount started = SettledTaskCount(true);
  std::atomic<bool> stop{false};
  std::atomic<long> progress{0};
  std::vector<std::thread> workers;
  for (int i = 0; i < 3; ++i) workers.emplace_back(BusyWorker, i, &stop, &progress);
  int bad_children = 0;
  constexpr int kForks = 4;
  for (int round = 0; round < kForks; ++round) {
    const long seen = progress.load();
    while (progress.load() < seen + 1000) std::this_thread::yield();
    const pid_t pid = fork();
    if (pid < 0) abort();
    if (pid == 0) ForkChild(round);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) ++bad_children;
  }
  stop.store(true);
  for (auto& t : workers) t.join();
  const TaskCount end = SettledTaskCount(true);
  char line[160];
  snprintf(line, sizeof(line),
           "parent background_at_start=%d background=%d others=%d bad_children=%d\n",
           started.background, end.background, end.others, bad_children);
  Say(line);
  return 0;
}

namespace {

// The system's THP mode letter ('a'lways, 'm'advise, 'n'ever), from the word in
// brackets.
char ThpMode() {
  char text[128] = {};
  const int fd = open("/sys/kernel/mm/transparent_hugepage/enabled", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return '?';
  const ssize_t n = read(fd, text, sizeof(text) - 1);
  close(fd);
  const char* at = n > 0 ? strchr(text, '[') : nullptr;
  return at == nullptr ? '?' : at[1];
}

constexpr size_t kDenseHeapBytes = 160 * kMiB;
constexpr size_t kDenseObjects = kDenseHeapBytes / 64;
void* g_dense[kDenseObjects];

}  // namespace

// The heap past 64 MiB (kMinHeapForHugepages) is the part that may be collapsed: about
// 96 MiB of it, every page in use.
JSTEST_CHILD_MAIN(background_hugepages) {
  for (size_t i = 0; i < kDenseObjects; ++i) {
    g_dense[i] = js_malloc(64);
    if (g_dense[i] == nullptr) abort();
    memset(g_dense[i], static_cast<int>(i) | 1, 64);
  }
  const size_t want = 80 * kMiB;
  js_stats_t st;
  const uint64_t start = NowNs();
  for (;;) {
    js_get_stats(&st);
    if (st.hugepage_backed >= want || NowNs() - start > kDeadlineNs) break;
    Nap(kPollNs);
  }
  const size_t kernel = jstest::AnonHugePageBytes();
  // The copies kept every object's contents.
  size_t damaged = 0;
  for (size_t i = 0; i < kDenseObjects; ++i) {
    const auto* b = static_cast<const unsigned char*>(g_dense[i]);
    damaged += b[0] != static_cast<unsigned char>(static_cast<int>(i) | 1) || b[63] != b[0];
  }
  for (size_t i = 0; i < kDenseObjects; ++i) js_free(g_dense[i]);
  char line[200];
  snprintf(line, sizeof(line), "thp=%c counted=%zu kernel=%zu damaged=%zu ms=%llu\n", ThpMode(),
           st.hugepage_backed, kernel, damaged,
           static_cast<unsigned long long>((NowNs() - start) / 1000000u));
  Say(line);
  return 0;
}

namespace {

const std::vector<std::string> kOn = {"JSMALLOC_BACKGROUND_THREAD=1", "JSMALLOC_DECAY_MS=100"};
const std::vector<std::string> kOff = {"JSMALLOC_BACKGROUND_THREAD=0", "JSMALLOC_DECAY_MS=100"};

// The lines of a child's stderr that start with `prefix`.
std::vector<std::string> LinesStartingWith(const std::string& text, const std::string& prefix) {
  std::vector<std::string> lines;
  size_t at = 0;
  while (at < text.size()) {
    size_t end = text.find('\n', at);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(at, end - at);
    if (line.compare(0, prefix.size(), prefix) == 0) lines.push_back(line);
    at = end + 1;
  }
  return lines;
}

// The number after " key=" (or "key=" at the start) in line; -1 when it is not there.
long long Field(const std::string& line, const std::string& key) {
  const std::string padded = " " + line;
  const size_t at = padded.find(" " + key + "=");
  if (at == std::string::npos) return -1;
  return atoll(padded.c_str() + at + key.size() + 2);
}

jstest::ChildResult RunChild(const char* name, const std::vector<std::string>& env) {
  jstest::ChildResult r = jstest::RunSelfAsChild(name, env, {});
  EXPECT_TRUE(WIFEXITED(r.wait_status) && WEXITSTATUS(r.wait_status) == 0)
      << name << ": wait status " << r.wait_status << ", stderr:\n"
      << r.err;
  return r;
}

// What the burst added and what of it was still resident when the watch ended.
struct Fall {
  long long added;
  long long left;
};
Fall FallOf(const std::string& line) {
  const long long baseline = Field(line, "baseline");
  return Fall{Field(line, "peak") - baseline, Field(line, "final") - baseline};
}

TEST(BackgroundThread, ReleasesWhileTheProgramMakesNoAllocatorCalls) {
  const jstest::ChildResult on = RunChild("background_release", kOn);
  const std::vector<std::string> on_lines = LinesStartingWith(on.err, "baseline=");
  ASSERT_EQ(on_lines.size(), 1u) << on.err;
  const Fall with = FallOf(on_lines[0]);
  ASSERT_GT(with.added, static_cast<long long>(48 * kMiB)) << on_lines[0];
  EXPECT_LT(with.left, with.added / 4) << "with the background thread: " << on_lines[0];

  // The same, without the thread: nothing else gives the memory back in that time.
  const jstest::ChildResult off = RunChild("background_release", kOff);
  const std::vector<std::string> off_lines = LinesStartingWith(off.err, "baseline=");
  ASSERT_EQ(off_lines.size(), 1u) << off.err;
  const Fall without = FallOf(off_lines[0]);
  ASSERT_GT(without.added, static_cast<long long>(48 * kMiB)) << off_lines[0];
  EXPECT_GT(without.left, without.added / 2) << "without the background thread: " << off_lines[0];
  EXPECT_GT(Field(off_lines[0], "ms"), 1000) << "the watch without the thread ended early";
}

TEST(BackgroundThread, ExistsOnlyWhenEnabledAndOnlyOnce) {
  const jstest::ChildResult on = RunChild("background_threads", kOn);
  const std::vector<std::string> on_lines = LinesStartingWith(on.err, "background=");
  ASSERT_EQ(on_lines.size(), 1u) << on.err;
  EXPECT_EQ(Field(on_lines[0], "background"), 1) << on_lines[0];
  EXPECT_EQ(Field(on_lines[0], "others"), 0) << on_lines[0];
  // The main thread's cache only: the background thread has none of its own.
  EXPECT_EQ(Field(on_lines[0], "caches"), 1) << on_lines[0];
  // Every signal a program could handle is blocked in it.
  const unsigned long long blocked = strtoull(
      on_lines[0].substr(on_lines[0].find("blocked=") + strlen("blocked=")).c_str(), nullptr, 16);
  for (int sig : {SIGINT, SIGTERM, SIGUSR1, SIGUSR2, SIGCHLD, SIGALRM, SIGPIPE, SIGHUP, SIGRTMAX})
    EXPECT_NE(blocked & (1ull << (sig - 1)), 0u)
        << "signal " << sig << " not blocked: " << on_lines[0];

  const jstest::ChildResult off = RunChild("background_threads", kOff);
  const std::vector<std::string> off_lines = LinesStartingWith(off.err, "background=");
  ASSERT_EQ(off_lines.size(), 1u) << off.err;
  EXPECT_EQ(Field(off_lines[0], "background"), 0) << off_lines[0];
  EXPECT_EQ(Field(off_lines[0], "others"), 0) << off_lines[0];
  EXPECT_EQ(Field(off_lines[0], "caches"), 1) << off_lines[0];
}

TEST(BackgroundThread, RestartedInForkChildrenAndStillOneInTheParent) {
  const jstest::ChildResult r = RunChild("background_fork", kOn);
  const std::vector<std::string> children = LinesStartingWith(r.err, "child=");
  EXPECT_EQ(children.size(), 4u) << r.err;
  for (const std::string& line : children) {
    EXPECT_EQ(Field(line, "background_before"), 0) << "the parent's thread in the child? " << line;
    EXPECT_EQ(Field(line, "background"), 1) << line;
    EXPECT_EQ(Field(line, "others"), 0) << line;
    const Fall fall = FallOf(line);
    EXPECT_GT(fall.added, static_cast<long long>(48 * kMiB)) << line;
    EXPECT_LT(fall.left, fall.added / 4) << "in the fork child: " << line;
  }
  const std::vector<std::string> parent = LinesStartingWith(r.err, "parent ");
  ASSERT_EQ(parent.size(), 1u) << r.err;
  EXPECT_EQ(Field(parent[0], "background_at_start"), 1) << parent[0];
  EXPECT_EQ(Field(parent[0], "background"), 1) << parent[0];
  EXPECT_EQ(Field(parent[0], "others"), 0) << parent[0];
  EXPECT_EQ(Field(parent[0], "bad_children"), 0) << parent[0];
}

// In THP mode `madvise`, JSMALLOC_HUGEPAGES=auto leaves the heap on 4 KiB pages when it
// faults in (a hugepage's first touch costs milliseconds here); with the background
// thread, the dense part is then collapsed onto hugepages, off the program's threads.
// The heap's count agrees with the kernel's; without the thread nothing is collapsed.
TEST(BackgroundThread, CollapsesADenseHeapOntoHugepages) {
  std::vector<std::string> verbose = kOn;
  verbose.push_back("JSMALLOC_VERBOSE=1");
  const jstest::ChildResult on = RunChild("background_hugepages", verbose);
  const std::vector<std::string> on_lines = LinesStartingWith(on.err, "thp=");
  ASSERT_EQ(on_lines.size(), 1u) << on.err;
  const std::string& with = on_lines[0];
  // JSMALLOC_VERBOSE says what the heap does.
  const std::vector<std::string> said = LinesStartingWith(on.err, "jsmalloc: hugepages: ");
  ASSERT_EQ(said.size(), 1u) << on.err;
  if (with[4] == 'm') {
    EXPECT_NE(said[0].find("collapsed by the background thread"), std::string::npos) << said[0];
  }
  EXPECT_EQ(Field(with, "damaged"), 0) << with;
  const long long counted = Field(with, "counted");
  const long long kernel = Field(with, "kernel");
  // The kernel backs at least what is counted (and the heap's own metadata besides).
  EXPECT_GE(kernel, counted) << with;
  if (with[4] == 'm') {
    EXPECT_GE(counted, static_cast<long long>(80 * kMiB)) << "not collapsed in time: " << with;
  } else if (with[4] == 'n') {
    EXPECT_EQ(counted, 0) << with;
  }

  const jstest::ChildResult off = RunChild("background_hugepages", kOff);
  const std::vector<std::string> off_lines = LinesStartingWith(off.err, "thp=");
  ASSERT_EQ(off_lines.size(), 1u) << off.err;
  EXPECT_EQ(Field(off_lines[0], "damaged"), 0) << off_lines[0];
  if (off_lines[0][4] == 'm') {
    EXPECT_EQ(Field(off_lines[0], "counted"), 0) << off_lines[0];
  }
}

}  // namespace
