#include "test_util.h"

#include <fcntl.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace jstest {

size_t SkewedSize(Rng& rng, size_t max) {
  uint64_t r = rng.Below(100);
  size_t n;
  if (r < 75) {
    n = rng.Range(0, 256);
  } else if (r < 92) {
    n = rng.Range(257, 8 * kKiB);
  } else if (r < 98) {
    n = rng.Range(8 * kKiB + 1, kMaxSmall);
  } else {
    n = rng.Range(kMaxSmall + 1, kMiB);
  }
  return n < max ? n : max;
}

namespace {

inline uint64_t WordAt(uint64_t seed, size_t word_index) {
  return Mix(seed ^ (word_index * 0xD6E8FEB86659FD93ull));
}

inline uint8_t ByteAt(uint64_t seed, size_t offset) {
  return static_cast<uint8_t>(WordAt(seed, offset / 8) >> (8 * (offset % 8)));
}

// Writes the pattern over [begin, end) of the block at p.
void FillRange(unsigned char* p, size_t begin, size_t end, uint64_t seed) {
  size_t o = begin;
  while (o < end && o % 8 != 0) {
    p[o] = ByteAt(seed, o);
    ++o;
  }
  for (; o + 8 <= end; o += 8) {
    uint64_t w = WordAt(seed, o / 8);
    std::memcpy(p + o, &w, 8);
  }
  for (; o < end; ++o) p[o] = ByteAt(seed, o);
}

// Returns end if [begin, end) holds the pattern, otherwise the first bad offset.
size_t CheckRange(const unsigned char* p, size_t begin, size_t end, uint64_t seed) {
  size_t o = begin;
  while (o < end && o % 8 != 0) {
    if (p[o] != ByteAt(seed, o)) return o;
    ++o;
  }
  for (; o + 8 <= end; o += 8) {
    uint64_t w;
    std::memcpy(&w, p + o, 8);
    if (w != WordAt(seed, o / 8)) {
      for (size_t i = o;; ++i)
        if (p[i] != ByteAt(seed, i)) return i;
    }
  }
  for (; o < end; ++o)
    if (p[o] != ByteAt(seed, o)) return o;
  return end;
}

constexpr size_t kSparseEdge = 256;
constexpr size_t kSparseStride = 4096;

}  // namespace

void FillSeeded(void* p, size_t n, uint64_t seed) {
  FillRange(static_cast<unsigned char*>(p), 0, n, seed);
}

size_t FindSeededMismatch(const void* p, size_t n, uint64_t seed) {
  return CheckRange(static_cast<const unsigned char*>(p), 0, n, seed);
}

void FillSparse(void* p, size_t n, uint64_t seed) {
  auto* b = static_cast<unsigned char*>(p);
  if (n <= 2 * kSparseEdge) {
    FillRange(b, 0, n, seed);
    return;
  }
  FillRange(b, 0, kSparseEdge, seed);
  for (size_t o = kSparseStride; o + 8 <= n - kSparseEdge; o += kSparseStride)
    FillRange(b, o, o + 8, seed);
  FillRange(b, n - kSparseEdge, n, seed);
}

size_t FindSparseMismatch(const void* p, size_t n, uint64_t seed) {
  auto* b = static_cast<const unsigned char*>(p);
  if (n <= 2 * kSparseEdge) return CheckRange(b, 0, n, seed);
  size_t bad = CheckRange(b, 0, kSparseEdge, seed);
  if (bad != kSparseEdge) return bad;
  for (size_t o = kSparseStride; o + 8 <= n - kSparseEdge; o += kSparseStride) {
    bad = CheckRange(b, o, o + 8, seed);
    if (bad != o + 8) return bad;
  }
  bad = CheckRange(b, n - kSparseEdge, n, seed);
  return bad;
}

size_t FindNonZero(const void* p, size_t n) {
  auto* b = static_cast<const unsigned char*>(p);
  size_t o = 0;
  while (o < n && (reinterpret_cast<uintptr_t>(b + o) & 7) != 0) {
    if (b[o] != 0) return o;
    ++o;
  }
  for (; o + 32 <= n; o += 32) {
    uint64_t w[4];
    std::memcpy(w, b + o, 32);
    if ((w[0] | w[1] | w[2] | w[3]) != 0) break;
  }
  for (; o < n; ++o)
    if (b[o] != 0) return o;
  return n;
}

namespace {

// Reads /proc/self/statm field `index` (0 = size, 1 = resident) in pages. No heap use.
size_t StatmField(int index) {
  int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  if (fd < 0) abort();
  char buf[256];
  ssize_t len = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  if (len <= 0) abort();
  buf[len] = '\0';
  char* s = buf;
  for (int i = 0; i < index; ++i) {
    while (*s != ' ' && *s != '\0') ++s;
    if (*s == '\0') abort();
    ++s;
  }
  return strtoull(s, nullptr, 10) * static_cast<size_t>(sysconf(_SC_PAGESIZE));
}

}  // namespace

size_t RssBytes() {
  return StatmField(1);
}
size_t VmBytes() {
  return StatmField(0);
}

void ExitFailing(const char* what) {
  if (write(2, what, strlen(what)) < 0 || write(2, "\n", 1) < 0) _exit(2);
  _exit(1);
}

size_t AnonHugePageBytes() {
  char text[4096] = {};
  const int fd = open("/proc/self/smaps_rollup", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  const ssize_t n = read(fd, text, sizeof(text) - 1);
  close(fd);
  const char* at = n > 0 ? strstr(text, "AnonHugePages:") : nullptr;
  return at == nullptr ? 0 : strtoull(at + strlen("AnonHugePages:"), nullptr, 10) << 10;
}

void DisableTransparentHugePages() {
  prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0);
}

std::string AddrRegex(const void* p) {
  char buf[64];
  snprintf(buf, sizeof(buf), "0x0*%lx([^0-9a-f]|$)",
           static_cast<unsigned long>(reinterpret_cast<uintptr_t>(p)));
  return buf;
}

}  // namespace jstest
