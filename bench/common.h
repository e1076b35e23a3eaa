// Shared helpers of the jsmalloc benchmark workloads (bench/*.cpp).
//
// Every workload is a plain program: it calls malloc/free/new/delete of whatever
// allocator the process has (the runner picks one with LD_PRELOAD) and never links
// jsmalloc. What a workload prints on stdout is a few `jsbench key=value ...` lines
// the runner parses:
//
//   jsbench workload=<name> threads=<n> scale=<f> seed=<s> malloc_lib=<path>
//   jsbench phase=<label> ms=<x>            (optional, one per timed phase)
//   jsbench ops=<n>                          (operations done, for instructions/op)
//   jsbench rss_after_free_kb=<n>            (resident set after the workload freed all)
//   jsbench checksum=<hex> verify=ok         (last line; verify=FAILED exits non-zero)
//
// Blocks carry a verifiable pattern (see fill_block/check_block) so a workload notices
// when an allocator hands out overlapping memory or loses a write in realloc.
#ifndef JSMALLOC_BENCH_COMMON_H_
#define JSMALLOC_BENCH_COMMON_H_

#include <dlfcn.h>
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

namespace jsb {

// ---- Keeping the compiler honest -------------------------------------------------

// Tells the compiler that p escapes (so a malloc/free pair cannot be elided) and that
// memory may have been read or written behind its back.
inline void escape(const void* p) {
  asm volatile("" : : "g"(p) : "memory");
}

// ---- Failure ------------------------------------------------------------------------

[[noreturn]] inline void fail(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::fputs("jsbench FAIL: ", stderr);
  std::vfprintf(stderr, fmt, ap);
  std::fputc('\n', stderr);
  va_end(ap);
  std::printf("jsbench checksum=0 verify=FAILED\n");
  std::fflush(stdout);
  std::_Exit(1);
}

// Allocation failure is a verification failure: every workload stays far below the
// machine's memory, so a NULL means the allocator misbehaved.
inline void* check_alloc(void* p, size_t size) {
  if (p == nullptr && size != 0) fail("allocation of %zu bytes returned NULL", size);
  return p;
}

// ---- Random numbers: splitmix64 seeding a xoshiro256** generator -------------------

inline uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

class Rng {
 public:
  explicit Rng(uint64_t seed, uint64_t stream = 0) {
    uint64_t x = seed ^ (stream * 0xd1342543de82ef95ULL);
    for (auto& w : s_) {
      x += 0x9e3779b97f4a7c15ULL;
      w = mix64(x);
    }
  }
  uint64_t next() {
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }
  // Uniform in [0, n); n > 0.
  uint64_t below(uint64_t n) {
    return static_cast<uint64_t>((static_cast<unsigned __int128>(next()) * n) >> 64);
  }
  // Uniform in [lo, hi].
  uint64_t range(uint64_t lo, uint64_t hi) { return lo + below(hi - lo + 1); }
  // True with probability num/den.
  bool chance(uint64_t num, uint64_t den) { return below(den) < num; }
  // Log-uniform in [lo, hi]: every power-of-two band is equally likely, uniform inside
  // a band. This is how "random sizes over all size classes" are drawn.
  size_t log_uniform(size_t lo, size_t hi) {
    const int lo_bits = 63 - __builtin_clzll(lo);
    const int hi_bits = 63 - __builtin_clzll(hi);
    for (;;) {
      const int b = lo_bits + static_cast<int>(below(static_cast<uint64_t>(hi_bits - lo_bits + 1)));
      const size_t base = size_t{1} << b;
      const size_t s = base + below(base);
      if (s >= lo && s <= hi) return s;
    }
  }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

// ---- Verifiable blocks ---------------------------------------------------------------

// Pattern for a block whose size the caller remembers: the first min(size, 8) bytes
// hold the tag; blocks of 16 bytes or more also hold ~tag in their last 8 bytes.
inline void fill(void* p, size_t size, uint64_t tag) {
  auto* b = static_cast<unsigned char*>(p);
  if (size >= 8) {
    std::memcpy(b, &tag, 8);
    if (size >= 16) {
      const uint64_t t = ~tag;
      std::memcpy(b + size - 8, &t, 8);
    }
  } else {
    std::memcpy(b, &tag, size);
  }
}

// Returns true if the pattern written by fill(p, size, tag) is intact.
inline bool check(const void* p, size_t size, uint64_t tag) {
  const auto* b = static_cast<const unsigned char*>(p);
  if (size >= 8) {
    uint64_t head;
    std::memcpy(&head, b, 8);
    if (head != tag) return false;
    if (size >= 16) {
      uint64_t tail;
      std::memcpy(&tail, b + size - 8, 8);
      if (tail != ~tag) return false;
    }
    return true;
  }
  uint64_t head = 0, want = 0;
  std::memcpy(&head, b, size);
  std::memcpy(&want, &tag, size);
  return head == want;
}

// Pattern for a large block used page by page: one 8-byte word per 4 KiB page (a
// function of tag and offset), plus fill()'s head and tail, so every page is resident
// without every byte being written.
constexpr size_t kPageStride = 4096;
inline void fill_pages(void* p, size_t size, uint64_t tag) {
  auto* b = static_cast<unsigned char*>(p);
  for (size_t off = 0; off + 8 <= size; off += kPageStride) {
    const uint64_t v = tag + off;
    std::memcpy(b + off, &v, 8);
  }
  fill(p, size, tag);
}

// Checks the pattern of fill_pages (size >= 16) and returns the sum of its page words;
// a damaged block fails the workload, `what` naming it.
inline uint64_t check_pages(const void* p, size_t size, uint64_t tag, const char* what) {
  if (!check(p, size, tag)) fail("%s: block of %zu bytes damaged", what, size);
  const auto* b = static_cast<const unsigned char*>(p);
  uint64_t sum = 0;
  for (size_t off = kPageStride; off + 8 <= size - 8; off += kPageStride) {
    uint64_t v;
    std::memcpy(&v, b + off, 8);
    if (v != tag + off) fail("%s: page at +%zu of a %zu-byte block damaged", what, off, size);
    sum += v;
  }
  return sum;
}

// Self-describing block (size >= 8, size < 2^32): the first 8 bytes hold
// size << 32 | id, the last 8 bytes (size >= 16) hold a hash of that header, so the
// block can be verified by a thread that knows nothing about it.
inline uint64_t block_header(size_t size, uint64_t id) {
  return (static_cast<uint64_t>(size) << 32) | (id & 0xffffffffULL);
}
inline uint64_t block_value(uint64_t header) {
  return mix64(header);
}

inline void fill_block(void* p, size_t size, uint64_t id) {
  auto* b = static_cast<unsigned char*>(p);
  const uint64_t h = block_header(size, id);
  std::memcpy(b, &h, 8);
  if (size >= 16) {
    const uint64_t v = block_value(h);
    std::memcpy(b + size - 8, &v, 8);
  }
}

// Verifies a block written by fill_block and returns its value (a hash of its size and
// id: the same for every allocator, so sums of values are deterministic checksums).
// Fails the workload if the block is damaged.
inline uint64_t check_block(const void* p, const char* where) {
  const auto* b = static_cast<const unsigned char*>(p);
  uint64_t h;
  std::memcpy(&h, b, 8);
  const size_t size = static_cast<size_t>(h >> 32);
  if (size < 8)
    fail("%s: block %p has a damaged header %016llx", where, p, static_cast<unsigned long long>(h));
  const uint64_t v = block_value(h);
  if (size >= 16) {
    uint64_t t;
    std::memcpy(&t, b + size - 8, 8);
    if (t != v) fail("%s: block %p of %zu bytes has a damaged tail", where, p, size);
  }
  return v;
}

inline size_t block_size(const void* p) {
  uint64_t h;
  std::memcpy(&h, p, 8);
  return static_cast<size_t>(h >> 32);
}

// ---- Time and memory -------------------------------------------------------------------

inline double now_ms() {
  using namespace std::chrono;
  return duration<double, std::milli>(steady_clock::now().time_since_epoch()).count();
}

// Resident set size of this process in KiB, read from /proc/self/statm with plain
// system calls (no stdio buffer is allocated while the workload measures).
inline long rss_kb() {
  const int fd = ::open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  char buf[128];
  const ssize_t n = ::read(fd, buf, sizeof(buf) - 1);
  ::close(fd);
  if (n <= 0) return -1;
  buf[n] = '\0';
  const char* s = buf;
  while (*s && *s != ' ') ++s;  // skip "size"
  const long pages = std::strtol(s, nullptr, 10);
  return pages * (::sysconf(_SC_PAGESIZE) / 1024);
}

// Path of the shared object that provides malloc in this process: the runner checks it
// to be sure LD_PRELOAD really took effect (a preload that fails to load is only a
// warning for ld.so).
inline const char* malloc_lib() {
  void* sym = ::dlsym(RTLD_DEFAULT, "malloc");
  Dl_info info;
  if (sym != nullptr && ::dladdr(sym, &info) != 0 && info.dli_fname != nullptr) {
    return info.dli_fname;
  }
  return "unknown";
}

// ---- Command line -------------------------------------------------------------------

// Every workload takes --scale F (1.0 = the published, "full" size), --threads N and
// --seed S, plus named integer/string options of its own, as `--name value` or
// `--name=value`. A number that does not parse whole (`--slots x`, `--scale 1e`) is
// refused, with the value named, rather than read as 0.
class Cli {
 public:
  Cli(int argc, char** argv, const char* workload, std::vector<std::string> extra,
      const char* usage)
      : prog_(argv[0]), workload_(workload), extra_(std::move(extra)) {
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      if (a == "-h" || a == "--help") {
        std::printf("usage: %s [--scale F] [--threads N] [--seed S] %s\n", argv[0], usage);
        std::exit(0);
      }
      if (a.rfind("--", 0) != 0) usage_error(argv[0], "unexpected argument", a);
      std::string name = a.substr(2), value;
      const size_t eq = name.find('=');
      if (eq != std::string::npos) {
        value = name.substr(eq + 1);
        name.resize(eq);
      } else {
        if (i + 1 >= argc) usage_error(argv[0], "missing value for", a);
        value = argv[++i];
      }
      if (name == "scale") {
        if (!parse_real(value, &scale) || !(scale >= 0)) usage_error(argv[0], "bad --scale", value);
      } else if (name == "threads") {
        long n = 0;
        if (!parse_long(value, &n) || n < 1 || n > 1024)
          usage_error(argv[0], "bad --threads", value);
        threads = static_cast<int>(n);
      } else if (name == "seed") {
        if (!parse_u64(value, &seed)) usage_error(argv[0], "bad --seed", value);
      } else {
        bool known = false;
        for (const auto& e : extra_) known |= (e == name);
        if (!known) usage_error(argv[0], "unknown option", a);
        values_.emplace_back(name, value);
      }
    }
  }

  long num(const char* name, long def) const { return parsed(name, def, &parse_long); }
  double real(const char* name, double def) const { return parsed(name, def, &parse_real); }
  // The same, refused unless within [lo, hi] (`def` is): `--slots 0` is said, not a
  // silent exit.
  long num(const char* name, long def, long lo, long hi = LONG_MAX) const {
    return bounded(name, parsed(name, def, &parse_long), lo, hi);
  }
  double real(const char* name, double def, double lo, double hi) const {
    return bounded(name, parsed(name, def, &parse_real), lo, hi);
  }
  // Refuses option `name` as given, saying what it should be (checks across options).
  [[noreturn]] void refuse(const char* name, const char* want) const {
    std::fprintf(stderr, "%s: bad --%s %s (want %s)\n", prog_, name, str(name, "").c_str(), want);
    std::exit(2);
  }
  std::string str(const char* name, const char* def) const {
    for (const auto& [k, v] : values_)
      if (k == name) return v;
    return def;
  }

  // full * scale, rounded, at least `floor` unless the scale is 0 (scale 0 is the
  // "no work" baseline that `bench/run --callgrind` subtracts).
  size_t scaled(double full, size_t floor = 1) const {
    if (scale == 0) return 0;
    const double v = std::llround(full * scale);
    return v < static_cast<double>(floor) ? floor : static_cast<size_t>(v);
  }

  // The first output line.
  void announce(const char* name = nullptr) const {
    std::printf("jsbench workload=%s threads=%d scale=%g seed=%llu malloc_lib=%s\n",
                name ? name : workload_, threads, scale, static_cast<unsigned long long>(seed),
                malloc_lib());
    std::fflush(stdout);
  }

  double scale = 1.0;
  int threads = 1;
  uint64_t seed = 1;

 private:
  [[noreturn]] static void usage_error(const char* prog, const char* what, const std::string& arg) {
    std::fprintf(stderr, "%s: %s %s (try --help)\n", prog, what, arg.c_str());
    std::exit(2);
  }
  // Option `name` read by `parse`, or `def` when not given; refused when it does not parse.
  template <typename T>
  T parsed(const char* name, T def, bool (*parse)(const std::string&, T*)) const {
    for (const auto& [k, v] : values_) {
      if (k != name) continue;
      T x{};
      if (!parse(v, &x)) usage_error(prog_, ("bad --" + k).c_str(), v);
      return x;
    }
    return def;
  }
  template <typename T>
  T bounded(const char* name, T x, T lo, T hi) const {
    if (x >= lo && x <= hi) return x;
    const std::string low = text(lo);
    const std::string want =
        hi == std::numeric_limits<T>::max() ? "at least " + low : low + " .. " + text(hi);
    refuse(name, want.c_str());
  }
  static std::string text(long n) { return std::to_string(n); }
  static std::string text(double x) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", x);
    return buf;
  }
  // The whole of `text` as an integer (decimal, 0x hex or 0 octal) or a finite number.
  static bool parse_long(const std::string& text, long* out) {
    char* end = nullptr;
    errno = 0;
    *out = std::strtol(text.c_str(), &end, 0);
    return !text.empty() && *end == '\0' && errno == 0;
  }
  // The same for an unsigned 64-bit integer; a sign is refused (strtoull would wrap it).
  static bool parse_u64(const std::string& text, uint64_t* out) {
    char* end = nullptr;
    errno = 0;
    *out = std::strtoull(text.c_str(), &end, 0);
    return !text.empty() && *end == '\0' && errno == 0 && text[0] != '-';
  }
  static bool parse_real(const std::string& text, double* out) {
    char* end = nullptr;
    errno = 0;
    *out = std::strtod(text.c_str(), &end);
    return !text.empty() && *end == '\0' && errno == 0 && std::isfinite(*out);
  }
  const char* prog_ = "";
  const char* workload_;
  std::vector<std::string> extra_;
  std::vector<std::pair<std::string, std::string>> values_;
};

// ---- Reporting ------------------------------------------------------------------------

inline void report_phase(const char* label, double ms) {
  std::printf("jsbench phase=%s ms=%.3f\n", label, ms);
}
inline void report_ops(uint64_t ops) {
  std::printf("jsbench ops=%llu\n", static_cast<unsigned long long>(ops));
}
inline void report_rss_after_free() {
  std::printf("jsbench rss_after_free_kb=%ld\n", rss_kb());
}
// The last line. Exits non-zero when verification failed.
inline int report_checksum(uint64_t checksum, bool ok) {
  std::printf("jsbench checksum=%016llx verify=%s\n", static_cast<unsigned long long>(checksum),
              ok ? "ok" : "FAILED");
  std::fflush(stdout);
  return ok ? 0 : 1;
}

// Splits `total` units of work over `parts` workers: worker i gets share(i).
inline size_t share(size_t total, size_t parts, size_t i) {
  return total / parts + (i < total % parts ? 1 : 0);
}

}  // namespace jsb

#endif  // JSMALLOC_BENCH_COMMON_H_
