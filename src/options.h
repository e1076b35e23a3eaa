// Run-time options: every one is declared once, in JSMALLOC_OPTIONS below, and read
// from the environment as JSMALLOC_<NAME>=value at start-up (sizes take k, m, g
// suffixes). They are read on slow paths only, never on a fast path.
#pragma once

#include <cstddef>
#include <cstdint>

namespace jsmalloc {

// Marks an option whose value is a path: GetOptionText gives it, GetOption says 1 if set.
inline constexpr const char kPathOption[] = "<path>";

// X(enum name, env name, default, words, meaning). `words`: nullptr for a number, else
// the values the option takes by name, "|"-separated: the first is 0, the next 1, ...
#define JSMALLOC_OPTIONS(X)                                                                  \
  X(kVerbose, "VERBOSE", 0, nullptr, "print the options in force at start-up (1 = on)")      \
  X(kShowStats, "SHOW_STATS", 0, nullptr,                                                    \
    "print statistics to stderr at exit (1 = text, 2 = JSON)")                               \
  X(kDecayMs, "DECAY_MS", 500, nullptr, "free pages go back to the OS after this many ms")   \
  X(kBackgroundThread, "BACKGROUND_THREAD", 0, nullptr,                                      \
    "1 = a thread releases idle memory every DECAY_MS/4, even while nothing allocates")      \
  X(kThreadCacheBytes, "THREAD_CACHE_BYTES", 8 << 20, nullptr,                               \
    "upper bound on one thread's cache")                                                     \
  X(kTotalThreadCacheBytes, "TOTAL_THREAD_CACHE_BYTES", 32 << 20, nullptr,                   \
    "all threads' caches together: each gets an equal share, at least 1 MiB")                \
  X(kHeapReserve, "HEAP_RESERVE", int64_t{1} << 40, nullptr,                                 \
    "address space reserved for the heap")                                                   \
  X(kHugeThreshold, "HUGE_THRESHOLD", 64 << 20, nullptr,                                     \
    "blocks this large get their own mapping")                                               \
  X(kHugepages, "HUGEPAGES", 0, "auto|always|never",                                         \
    "transparent hugepages for a heap of 64 MiB or more: auto = where the system's mode is " \
    "always (madvise: collapsed by the background thread), always = MADV_HUGEPAGE")          \
  X(kSampleInterval, "SAMPLE_INTERVAL", 2 << 20, nullptr,                                    \
    "mean bytes between sampled allocations")                                                \
  X(kCheckSizedFree, "CHECK_SIZED_FREE", 1, nullptr,                                         \
    "debug/secure builds: abort on a wrong sized free")                                      \
  X(kProfileSample, "PROFILE_SAMPLE", 2 << 20, nullptr,                                      \
    "mean bytes between sampled allocations (SAMPLE_INTERVAL is its old name); setting it "  \
    "turns the heap profiler on")                                                            \
  X(kProfile, "PROFILE", 0, kPathOption,                                                     \
    "write the heap profile to FILE at exit (FILE.pb.gz: pprof protobuf) and the peak to "   \
    "FILE.peak")                                                                             \
  X(kProfileSignal, "PROFILE_SIGNAL", 0, nullptr,                                            \
    "signal number that writes a heap profile (to PROFILE.N, else jsmalloc.PID.N.heap)")     \
  X(kLeaks, "LEAKS", 0, nullptr, "1 = report the sampled objects still live at exit")        \
  X(kFrontend, "FRONTEND", 0, "thread|percpu",                                               \
    "front-end caches: thread = one per thread, percpu = one per CPU on rseq (per-thread "   \
    "where rseq cannot be had)")                                                             \
  X(kPercpuCacheBytes, "PERCPU_CACHE_BYTES", 3 << 20, nullptr,                               \
    "upper bound on one CPU's cache (FRONTEND=percpu)")                                      \
  X(kRseq, "RSEQ", 1, nullptr, "0 = act as if the kernel had no rseq (tests the fallback)")

enum class Option : int {
#define JS_OPTION_ENUM(name, env, def, words, doc) name,
  JSMALLOC_OPTIONS(JS_OPTION_ENUM)
#undef JS_OPTION_ENUM
      kCount
};

extern constinit int64_t g_option_values[static_cast<int>(Option::kCount)];

inline int64_t GetOption(Option o) {
  return g_option_values[static_cast<int>(o)];
}

// The text of a kPathOption option, or nullptr when it is not set.
const char* GetOptionText(Option o);
// Whether the environment set option o (rather than the default being in force).
bool OptionIsSet(Option o);

// Reads the environment. Called once during global initialisation.
void LoadOptions();
// Writes "jsmalloc: option NAME = value" lines to stderr.
void PrintOptions();

}  // namespace jsmalloc
