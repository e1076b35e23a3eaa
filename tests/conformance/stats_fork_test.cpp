// Process-level behaviour: JSMALLOC_SHOW_STATS=1 prints statistics at exit, and a
// forked child has a working allocator.
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <regex>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "alloc_fns.h"
#include "test_main.h"
#include "test_util.h"

namespace fn = jstest::fn;
using jstest::kKiB;

// A fresh process that allocates in every category, frees, and exits normally.
JSTEST_CHILD_MAIN(stats_workload) {
  std::vector<void*> ps;
  for (size_t n : {size_t{16}, size_t{1000}, 50 * kKiB, jstest::kLargeSize, jstest::kHugeSize}) {
    for (int i = 0; i < 10; ++i) {
      void* p = fn::malloc_(n);
      if (p == nullptr) return 3;
      memset(p, 1, n < 4096 ? n : 4096);
      ps.push_back(p);
    }
  }
  for (void* p : ps) fn::free_(p);
  return 0;
}

TEST(Stats, ShowStatsAtExit) {
  jstest::ChildResult r = jstest::RunSelfAsChild("stats_workload", {"JSMALLOC_SHOW_STATS=1"}, {});
  ASSERT_TRUE(WIFEXITED(r.wait_status) && WEXITSTATUS(r.wait_status) == 0)
      << "child status " << r.wait_status << ", stderr:\n"
      << r.err;
  size_t start = r.err.find("jsmalloc: statistics");
  ASSERT_NE(start, std::string::npos) << "no statistics block on stderr:\n" << r.err;
  EXPECT_TRUE(start == 0 || r.err[start - 1] == '\n') << "the block must start a line:\n" << r.err;
  std::string block = r.err.substr(start);
  EXPECT_TRUE(std::regex_search(block, std::regex("(^|\n)[^\n]*spans allocated:\\s+[1-9]")))
      << "no 'spans allocated: <n>' line with n >= 1:\n"
      << block;
}

TEST(Stats, ShowStatsJsonAtExit) {
  // JSMALLOC_SHOW_STATS=2 prints the statistics as one JSON object instead.
  jstest::ChildResult r = jstest::RunSelfAsChild("stats_workload", {"JSMALLOC_SHOW_STATS=2"}, {});
  ASSERT_TRUE(WIFEXITED(r.wait_status) && WEXITSTATUS(r.wait_status) == 0)
      << "child status " << r.wait_status << ", stderr:\n"
      << r.err;
  size_t open = r.err.find('{');
  size_t close = r.err.rfind('}');
  ASSERT_NE(open, std::string::npos) << r.err;
  ASSERT_NE(close, std::string::npos) << r.err;
  ASSERT_LT(open, close);
  std::string json = r.err.substr(open, close - open + 1);
  int depth = 0;
  for (char c : json) depth += (c == '{') - (c == '}');
  EXPECT_EQ(depth, 0) << json;
  EXPECT_TRUE(std::regex_search(json, std::regex("\"spans_allocated\"\\s*:\\s*[1-9]"))) << json;
}

TEST(Stats, NoStatsWithoutEnvironmentVariable) {
  jstest::ChildResult r = jstest::RunSelfAsChild("stats_workload", {}, {"JSMALLOC_SHOW_STATS"});
  ASSERT_TRUE(WIFEXITED(r.wait_status) && WEXITSTATUS(r.wait_status) == 0)
      << "child status " << r.wait_status << ", stderr:\n"
      << r.err;
  EXPECT_EQ(r.err.find("jsmalloc: statistics"), std::string::npos) << r.err;
}

TEST(Fork, ChildAllocatesAndFreesParentBlocks) {
  std::vector<void*> parent_blocks;
  for (size_t n : {size_t{32}, size_t{3000}, jstest::kLargeSize, jstest::kHugeSize}) {
    void* p = fn::malloc_(n);
    ASSERT_NE(p, nullptr);
    jstest::FillSeeded(p, n, n);
    parent_blocks.push_back(p);
  }
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    int rc = 0;
    size_t i = 0;
    for (size_t n : {size_t{32}, size_t{3000}, jstest::kLargeSize, jstest::kHugeSize}) {
      if (jstest::FindSeededMismatch(parent_blocks[i], n, n) != n) rc = 1;
      fn::free_(parent_blocks[i++]);
    }
    jstest::Rng rng(1);
    std::vector<void*> mine;
    for (int k = 0; k < 3000; ++k) {
      size_t n = jstest::SkewedSize(rng);
      void* p = fn::malloc_(n);
      if (p == nullptr)
        rc = 2;
      else
        memset(p, 7, n);
      mine.push_back(p);
    }
    for (void* p : mine) fn::free_(p);
    _exit(rc);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status)) << "child died, status " << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
  // The parent's copies are untouched by the child's frees.
  size_t i = 0;
  for (size_t n : {size_t{32}, size_t{3000}, jstest::kLargeSize, jstest::kHugeSize}) {
    EXPECT_EQ(jstest::FindSeededMismatch(parent_blocks[i], n, n), n);
    fn::free_(parent_blocks[i++]);
  }
}

namespace {

void* g_kept_for_exit = nullptr;

void FreeAtExit() {
  fn::free_(g_kept_for_exit);
  void* p = fn::malloc_(1000);
  if (p != nullptr) memset(p, 1, 1000);
  fn::free_(p);
}

struct StaticUser {
  ~StaticUser() {
    void* p = fn::malloc_(jstest::kLargeSize);
    fn::free_(p);
    fn::free_(kept);
  }
  void* kept = nullptr;
};

}  // namespace

// A process that frees and allocates from atexit handlers and static destructors (after
// the statistics may have been printed) still exits cleanly.
JSTEST_CHILD_MAIN(exit_time_allocation) {
  static StaticUser user;
  user.kept = fn::malloc_(200);
  g_kept_for_exit = fn::malloc_(jstest::kLargeSize);
  atexit(&FreeAtExit);
  return 0;
}

TEST(Stats, AllocationAfterStatsAtExit) {
  jstest::ChildResult r =
      jstest::RunSelfAsChild("exit_time_allocation", {"JSMALLOC_SHOW_STATS=1"}, {});
  EXPECT_TRUE(WIFEXITED(r.wait_status) && WEXITSTATUS(r.wait_status) == 0)
      << "child status " << r.wait_status << ", stderr:\n"
      << r.err;
  EXPECT_NE(r.err.find("jsmalloc: statistics"), std::string::npos) << r.err;
}
