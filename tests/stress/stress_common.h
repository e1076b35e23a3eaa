// Shared pieces of the stress tests. They are written against the js_* API so the same
// sources run linked with libjsmalloc.a (jsmalloc also serving malloc) and with a
// ThreadSanitizer build of the allocator (jsmalloc-prefixed-tsan, beside TSan's malloc).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <sstream>
#include <string>

#include "jsmalloc.h"
#include "test_util.h"

namespace jstest {

// Iteration counts are divided by this under ThreadSanitizer (5-15x slower).
#ifdef JSTEST_UNDER_TSAN
inline constexpr int kStressDivisor = 10;
inline constexpr bool kUnderTsan = true;
#else
inline constexpr int kStressDivisor = 1;
inline constexpr bool kUnderTsan = false;
#endif

// Collects failures from worker threads (gtest assertions are made on the main thread).
class Failures {
 public:
  template <class... Args>
  void Add(Args&&... args) {
    count_.fetch_add(1, std::memory_order_relaxed);
    std::lock_guard<std::mutex> lock(mu_);
    if (lines_ < 20) {
      std::ostringstream os;
      (os << ... << args);
      text_ += os.str();
      text_ += '\n';
      ++lines_;
    }
  }
  int count() const { return count_.load(std::memory_order_relaxed); }
  std::string text() {
    std::lock_guard<std::mutex> lock(mu_);
    return text_;
  }

 private:
  std::atomic<int> count_{0};
  std::mutex mu_;
  std::string text_;
  int lines_ = 0;
};

// A block carrying the sparse pattern derived from its address and size.
struct Tagged {
  void* p = nullptr;
  size_t n = 0;
};

// Reallocates tagged block s to `to` bytes, checks that its first bytes survived, and
// tags the result. Returns false, leaving s as it was, when js_realloc returned NULL.
inline bool ReallocTagged(Tagged& s, size_t to, int id, Failures* failures) {
  void* q = js_realloc(s.p, to);
  if (q == nullptr) return false;
  size_t head = s.n < to ? s.n : to;
  if (head > 256) head = 256;
  if (FindSeededMismatch(q, head, AddrSeed(s.p, s.n)) != head)
    failures->Add("thread ", id, ": js_realloc ", s.n, " -> ", to, " lost the contents");
  s = Tagged{q, to};
  FillSparse(q, to, AddrSeed(q, to));
  return true;
}

inline Tagged AllocTagged(size_t n) {
  Tagged t{js_malloc(n), n};
  if (t.p != nullptr) FillSparse(t.p, n, AddrSeed(t.p, n));
  return t;
}

// Returns n when the block's pattern is intact and its usable size covers it.
inline size_t CheckTagged(const Tagged& t) {
  if (js_usable_size(t.p) < t.n) return 0;
  return FindSparseMismatch(t.p, t.n, AddrSeed(t.p, t.n));
}

inline js_stats_t GetStats() {
  js_stats_t s{};
  js_get_stats(&s);
  return s;
}

}  // namespace jstest
