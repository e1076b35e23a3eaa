// Helpers shared by the conformance and stress tests: memory patterns, process memory
// readings, a small PRNG and size-category constants. Nothing here allocates through a
// hidden path except where a function says so.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

namespace jstest {

// Size routing the allocator promises (see the README / issue): small classes up to
// 128 KiB, page-heap spans of 8 KiB pages up to 64 MiB, own mappings from 64 MiB.
inline constexpr size_t kKiB = 1024;
inline constexpr size_t kMiB = 1024 * kKiB;
inline constexpr size_t kMaxSmall = 128 * kKiB;
inline constexpr size_t kHugeMin = 64 * kMiB;
inline constexpr size_t kAllocPage = 8 * kKiB;
inline constexpr size_t kOsPage = 4 * kKiB;

// Small, large and huge representative sizes (first is small, etc.).
inline constexpr size_t kSmallSize = 200;
inline constexpr size_t kLargeSize = 300 * kKiB;
inline constexpr size_t kHugeSize = 80 * kMiB;

// Hides a value from the optimiser (the compiler must assume it may be anything).
template <class T>
inline T Opaque(T v) {
  asm volatile("" : "+r"(v));
  return v;
}

inline bool IsAligned(const void* p, size_t align) {
  return (reinterpret_cast<uintptr_t>(p) & (align - 1)) == 0;
}

// splitmix64 finaliser.
inline uint64_t Mix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// xorshift64* — deterministic, cheap, good enough for picking sizes.
class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(Mix(seed) | 1) {}
  uint64_t Next() {
    s_ ^= s_ >> 12;
    s_ ^= s_ << 25;
    s_ ^= s_ >> 27;
    return s_ * 0x2545F4914F6CDD1Dull;
  }
  // Uniform in [0, n) (n > 0).
  uint64_t Below(uint64_t n) { return Next() % n; }
  // Uniform in [lo, hi].
  uint64_t Range(uint64_t lo, uint64_t hi) { return lo + Below(hi - lo + 1); }

 private:
  uint64_t s_;
};

// A size in [0, 1 MiB], skewed towards small: ~75 % up to 256 B, ~17 % up to 8 KiB,
// ~6 % up to 128 KiB, ~2 % up to 1 MiB.
size_t SkewedSize(Rng& rng, size_t max = kMiB);

// Position-based pattern: byte at offset o of a block filled with seed s is the same
// whatever the block's length, so a prefix of a block can be checked after realloc.
void FillSeeded(void* p, size_t n, uint64_t seed);
// Returns n if [p, p+n) holds the pattern, otherwise the first offset that does not.
size_t FindSeededMismatch(const void* p, size_t n, uint64_t seed);

// Sparse variant for the stress tests: writes the first and last 256 bytes and one
// 8-byte word in every 4 KiB between (touching every page of the block).
void FillSparse(void* p, size_t n, uint64_t seed);
size_t FindSparseMismatch(const void* p, size_t n, uint64_t seed);

// Seed derived from a block's address and size (the stress tests' pattern).
inline uint64_t AddrSeed(const void* p, size_t n) {
  return Mix(reinterpret_cast<uintptr_t>(p) * 31 + n);
}

// Returns n if all bytes are zero, otherwise the first non-zero offset.
size_t FindNonZero(const void* p, size_t n);

// Process memory as the kernel reports it (/proc/self/statm), in bytes.
size_t RssBytes();
size_t VmBytes();

// For a child of EXPECT_EXIT: says what failed on stderr and exits with status 1. No heap
// or stdio use (the child may have no memory left to spare).
[[noreturn]] void ExitFailing(const char* what);
// The process's anonymous memory on transparent hugepages (AnonHugePages of
// /proc/self/smaps_rollup), in bytes; 0 where the kernel has no such file. No heap use.
size_t AnonHugePageBytes();

// Turns transparent huge pages off for this process so RSS moves in 4 KiB steps
// (RSS-bound tests call it first; every ctest test runs in its own process).
void DisableTransparentHugePages();

// "0x0*<hex of p>" followed by a non-hex character: the address exactly as jsmalloc's
// messages print it, for death-test regexes (POSIX extended syntax).
std::string AddrRegex(const void* p);

}  // namespace jstest
