// Every failure the API reports: NULL (or an error code, or std::bad_alloc) with the
// right errno, and the allocator still working afterwards.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <new>
#include <vector>

#include <gtest/gtest.h>

#include "alloc_fns.h"
#include "test_main.h"
#include "test_util.h"

namespace fn = jstest::fn;
using jstest::kKiB;
using jstest::kMiB;

namespace {

constexpr size_t kSizeMax = SIZE_MAX;
constexpr size_t kPtrdiffMaxPlus1 = static_cast<size_t>(PTRDIFF_MAX) + 1;
constexpr size_t kHalfPlus1 = SIZE_MAX / 2 + 1;
void* const kSentinel = reinterpret_cast<void*>(uintptr_t{0xDEADBEE0});

#define EXPECT_NULL_ERRNO(call, err)                                                \
  do {                                                                              \
    errno = 0;                                                                      \
    void* r_ = (call);                                                              \
    int e_ = errno;                                                                 \
    EXPECT_EQ(r_, nullptr) << #call;                                                \
    EXPECT_EQ(e_, err) << #call << ": errno " << e_ << " (" << strerror(e_) << ")"; \
    if (r_ != nullptr) fn::free_(r_);                                               \
  } while (0)

// A block of the given size with a pattern, to check it survives a failed realloc.
struct Patterned {
  explicit Patterned(size_t n) : n(n), p(fn::malloc_(n)) {
    if (p != nullptr) jstest::FillSeeded(p, n, n);
  }
  bool Intact() const { return jstest::FindSeededMismatch(p, n, n) == n; }
  size_t n;
  void* p;
};

void CheckReallocFailureKeepsBlock(size_t n, size_t bad_size) {
  Patterned b(n);
  ASSERT_NE(b.p, nullptr);
  errno = 0;
  void* q = fn::realloc_(b.p, bad_size);
  int e = errno;
  EXPECT_EQ(q, nullptr) << "realloc(" << n << "-byte block, " << bad_size << ")";
  EXPECT_EQ(e, ENOMEM);
  EXPECT_TRUE(b.Intact()) << "failed realloc damaged the block";
  EXPECT_GE(fn::malloc_usable_size_(b.p), n);
  // Still a valid block: it can be grown for real and freed.
  void* r = fn::realloc_(b.p, n + 100);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(jstest::FindSeededMismatch(r, n, n), n);
  fn::free_(r);
}

}  // namespace

TEST(Errno, CallocOverflow) {
  EXPECT_NULL_ERRNO(fn::calloc_(kHalfPlus1, 2), ENOMEM);
  EXPECT_NULL_ERRNO(fn::calloc_(2, kHalfPlus1), ENOMEM);
  EXPECT_NULL_ERRNO(fn::calloc_(size_t{1} << 33, size_t{1} << 31), ENOMEM);
  EXPECT_NULL_ERRNO(fn::calloc_(kSizeMax, kSizeMax), ENOMEM);
  EXPECT_NULL_ERRNO(fn::libc_calloc_(kHalfPlus1, 4), ENOMEM);
}

TEST(Errno, CallocTooLargeWithoutOverflow) {
  EXPECT_NULL_ERRNO(fn::calloc_(1, kSizeMax), ENOMEM);
  EXPECT_NULL_ERRNO(fn::calloc_(kPtrdiffMaxPlus1, 1), ENOMEM);
}

TEST(Errno, MallocSizeMax) {
  EXPECT_NULL_ERRNO(fn::malloc_(kSizeMax), ENOMEM);
  EXPECT_NULL_ERRNO(fn::libc_malloc_(kSizeMax), ENOMEM);
}

TEST(Errno, MallocPtrdiffMaxPlusOne) {
  EXPECT_NULL_ERRNO(fn::malloc_(kPtrdiffMaxPlus1), ENOMEM);
}

TEST(Errno, MallocNearSizeMaxDoesNotWrap) {
  // Sizes that overflow when rounded up to a class, a page or a huge mapping.
  for (size_t n : {kSizeMax - 1, kSizeMax - 15, kSizeMax - 4095, kSizeMax - 8191,
                   kSizeMax - (size_t{2} << 20) + 1, static_cast<size_t>(PTRDIFF_MAX)}) {
    EXPECT_NULL_ERRNO(fn::malloc_(n), ENOMEM);
  }
}

TEST(Errno, ReallocarrayOverflow) {
  EXPECT_NULL_ERRNO(fn::reallocarray_(nullptr, kHalfPlus1, 2), ENOMEM);
  Patterned b(300);
  ASSERT_NE(b.p, nullptr);
  EXPECT_NULL_ERRNO(fn::reallocarray_(b.p, 2, kHalfPlus1), ENOMEM);
  EXPECT_TRUE(b.Intact());
  fn::free_(b.p);
}

TEST(Errno, ReallocNullSizeMax) {
  EXPECT_NULL_ERRNO(fn::realloc_(nullptr, kSizeMax), ENOMEM);
}

TEST(Errno, ReallocSizeMaxKeepsSmallBlock) {
  CheckReallocFailureKeepsBlock(jstest::kSmallSize, kSizeMax);
}
TEST(Errno, ReallocSizeMaxKeepsLargeBlock) {
  CheckReallocFailureKeepsBlock(jstest::kLargeSize, kSizeMax);
}
TEST(Errno, ReallocSizeMaxKeepsHugeBlock) {
  CheckReallocFailureKeepsBlock(jstest::kHugeSize, kSizeMax);
}
TEST(Errno, ReallocPtrdiffMaxPlusOneKeepsBlock) {
  CheckReallocFailureKeepsBlock(jstest::kSmallSize, kPtrdiffMaxPlus1);
  CheckReallocFailureKeepsBlock(jstest::kHugeSize, kPtrdiffMaxPlus1);
}

TEST(Errno, PosixMemalignNotPowerOfTwo) {
  for (size_t a : {size_t{24}, size_t{48}, size_t{72}, size_t{100}, size_t{3 * 4096}, kSizeMax}) {
    void* p = kSentinel;
    int rc = fn::posix_memalign_(&p, a, 64);
    EXPECT_EQ(rc, EINVAL) << "posix_memalign alignment " << a;
    EXPECT_EQ(p, kSentinel) << "posix_memalign changed *memptr on failure (alignment " << a << ")";
  }
}

TEST(Errno, PosixMemalignNotMultipleOfPointerSize) {
  for (size_t a : {size_t{0}, size_t{1}, size_t{2}, size_t{4}}) {
    void* p = kSentinel;
    int rc = fn::posix_memalign_(&p, a, 64);
    EXPECT_EQ(rc, EINVAL) << "posix_memalign alignment " << a;
    EXPECT_EQ(p, kSentinel) << "posix_memalign changed *memptr on failure (alignment " << a << ")";
  }
}

TEST(Errno, PosixMemalignSizeMax) {
  for (size_t a : {size_t{8}, size_t{64}, size_t{4096}, 4 * kMiB}) {
    void* p = kSentinel;
    int rc = fn::posix_memalign_(&p, a, kSizeMax);
    EXPECT_EQ(rc, ENOMEM) << "posix_memalign(" << a << ", SIZE_MAX)";
    EXPECT_EQ(p, kSentinel);
    rc = fn::posix_memalign_(&p, a, kSizeMax - a + 1);
    EXPECT_EQ(rc, ENOMEM) << "posix_memalign(" << a << ", SIZE_MAX - alignment + 1)";
  }
}

TEST(Errno, AlignedAllocNotPowerOfTwo) {
  for (size_t a : {size_t{3}, size_t{24}, size_t{48}, size_t{100}, size_t{3 * 4096}, kSizeMax}) {
    EXPECT_NULL_ERRNO(fn::aligned_alloc_(a, 96), EINVAL);
  }
}

TEST(Errno, AlignedAllocZeroAlignment) {
  EXPECT_NULL_ERRNO(fn::aligned_alloc_(0, 64), EINVAL);
}

TEST(Errno, AlignedAllocSizeMax) {
  EXPECT_NULL_ERRNO(fn::aligned_alloc_(64, kSizeMax), ENOMEM);
  EXPECT_NULL_ERRNO(fn::aligned_alloc_(4 * kMiB, kSizeMax - 4 * kMiB + 1), ENOMEM);
}

TEST(Errno, MemalignNotPowerOfTwo) {
  for (size_t a : {size_t{24}, size_t{48}, size_t{100}, size_t{3 * 4096}}) {
    EXPECT_NULL_ERRNO(fn::memalign_(a, 96), EINVAL);
    EXPECT_NULL_ERRNO(fn::libc_memalign_(a, 96), EINVAL);
  }
}

TEST(Errno, MemalignSizeMax) {
  EXPECT_NULL_ERRNO(fn::memalign_(4096, kSizeMax), ENOMEM);
}

TEST(Errno, VallocSizeMax) {
  EXPECT_NULL_ERRNO(fn::valloc_(kSizeMax), ENOMEM);
}

TEST(Errno, PvallocSizeMaxDoesNotWrap) {
  // Rounding SIZE_MAX up to a page wraps to 0; that must not yield a tiny block.
  EXPECT_NULL_ERRNO(fn::pvalloc_(kSizeMax), ENOMEM);
  EXPECT_NULL_ERRNO(fn::pvalloc_(kSizeMax - 4095), ENOMEM);
}

TEST(Errno, NewSizeMaxThrowsBadAlloc) {
  EXPECT_THROW(fn::new_(kSizeMax), std::bad_alloc);
}
TEST(Errno, NewArraySizeMaxThrowsBadAlloc) {
  EXPECT_THROW(fn::new_array_(kSizeMax), std::bad_alloc);
}
TEST(Errno, NewPtrdiffMaxPlusOneThrowsBadAlloc) {
  EXPECT_THROW(fn::new_(kPtrdiffMaxPlus1), std::bad_alloc);
}

namespace {
int g_new_handler_calls = 0;
void CountingNewHandler() {
  // Called when operator new cannot allocate; uninstalling makes the next try throw.
  ++g_new_handler_calls;
  std::set_new_handler(nullptr);
}
}  // namespace

TEST(Errno, NewCallsNewHandlerThenThrows) {
  g_new_handler_calls = 0;
  std::set_new_handler(&CountingNewHandler);
  EXPECT_THROW(fn::new_(kSizeMax), std::bad_alloc);
  EXPECT_EQ(g_new_handler_calls, 1);
  g_new_handler_calls = 0;
  std::set_new_handler(&CountingNewHandler);
  EXPECT_THROW(fn::new_aligned_(kSizeMax - 100, std::align_val_t{4096}), std::bad_alloc);
  EXPECT_EQ(g_new_handler_calls, 1);
  std::set_new_handler(nullptr);
}

TEST(Errno, NothrowNewSizeMaxReturnsNull) {
  EXPECT_EQ(fn::new_nothrow_(kSizeMax, std::nothrow), nullptr);
  EXPECT_EQ(fn::new_array_nothrow_(kSizeMax, std::nothrow), nullptr);
}

TEST(Errno, AlignedNewHugeSizeThrows) {
  EXPECT_THROW(fn::new_aligned_(kSizeMax, std::align_val_t{64}), std::bad_alloc);
  EXPECT_THROW(fn::new_aligned_(kSizeMax - 100, std::align_val_t{4096}), std::bad_alloc);
  EXPECT_THROW(fn::new_array_aligned_(kPtrdiffMaxPlus1, std::align_val_t{256}), std::bad_alloc);
}

TEST(Errno, AlignedNothrowNewHugeSizeReturnsNull) {
  EXPECT_EQ(fn::new_aligned_nothrow_(kSizeMax, std::align_val_t{64}, std::nothrow), nullptr);
  EXPECT_EQ(fn::new_array_aligned_nothrow_(kSizeMax - 100, std::align_val_t{4096}, std::nothrow),
            nullptr);
}

TEST(Errno, PrefixedApi) {
  EXPECT_NULL_ERRNO(fn::js_malloc_(kSizeMax), ENOMEM);
  EXPECT_NULL_ERRNO(fn::js_calloc_(kHalfPlus1, 2), ENOMEM);
  EXPECT_NULL_ERRNO(fn::js_realloc_(nullptr, kSizeMax), ENOMEM);
  EXPECT_NULL_ERRNO(fn::js_aligned_alloc_(24, 64), EINVAL);
  EXPECT_NULL_ERRNO(fn::js_aligned_alloc_(64, kSizeMax), ENOMEM);
}

// The allocator still works after any of the failures above.
TEST(Errno, AllocatorWorksAfterFailures) {
  for (int i = 0; i < 3; ++i) {
    errno = 0;
    EXPECT_EQ(fn::malloc_(kSizeMax), nullptr);
    EXPECT_EQ(fn::calloc_(kHalfPlus1, 2), nullptr);
  }
  for (size_t n : {size_t{10}, 300 * kKiB, jstest::kHugeMin}) {
    void* p = fn::malloc_(n);
    ASSERT_NE(p, nullptr);
    memset(p, 1, n);
    fn::free_(p);
  }
}

namespace {

// Runs in a forked child: limits the address space to what the process has now plus
// 512 MiB, exhausts it with huge allocations, checks every huge size then fails with
// ENOMEM, frees everything, and checks allocation works again. Exits 0 on success.
[[noreturn]] void ExhaustAddressSpaceChild() {
  int failures = 0;
  auto fail = [&failures](const char* what, size_t n, int err) {
    fprintf(stderr, "FAIL: %s (size %zu, errno %d)\n", what, n, err);
    ++failures;
  };
  std::vector<void*> held;
  held.reserve(64);
  // Under a finite limit jsmalloc gives back the unused part of its heap reservation
  // (1 TiB) when a mapping is refused: have that happen first, so that "what the process
  // has" is what it maps, not the reservation.
  struct rlimit rl;
  if (getrlimit(RLIMIT_AS, &rl) != 0) _exit(2);
  rl.rlim_cur = jstest::VmBytes();
  if (setrlimit(RLIMIT_AS, &rl) != 0) _exit(2);
  void* first = fn::malloc_(jstest::kHugeMin);
  if (first == nullptr)
    fail("malloc(64 MiB) under a limit at the VM size", jstest::kHugeMin, errno);
  fn::free_(first);
  const size_t vm = jstest::VmBytes();
  rl.rlim_cur = vm + 512 * kMiB;
  rl.rlim_max = vm + 512 * kMiB;
  if (setrlimit(RLIMIT_AS, &rl) != 0) {
    perror("setrlimit");
    _exit(2);
  }
  const size_t kGiB = 1024 * kMiB;

  errno = 0;
  void* p = fn::malloc_(kGiB);
  if (p != nullptr || errno != ENOMEM) fail("malloc(1 GiB) beyond RLIMIT_AS", kGiB, errno);
  if (p != nullptr) fn::free_(p);

  bool exhausted = false;
  for (int i = 0; i < 64; ++i) {
    errno = 0;
    p = fn::malloc_(jstest::kHugeMin);
    if (p == nullptr) {
      if (errno != ENOMEM) fail("malloc(64 MiB) at exhaustion", jstest::kHugeMin, errno);
      exhausted = true;
      break;
    }
    static_cast<char*>(p)[0] = 1;
    static_cast<char*>(p)[jstest::kHugeMin - 1] = 1;
    held.push_back(p);
  }
  if (!exhausted) fail("64 x 64 MiB never failed under a 512 MiB headroom", 0, 0);
  if (held.size() < 2) fail("fewer than two 64 MiB blocks fitted in 512 MiB", held.size(), 0);

  for (size_t n : {jstest::kHugeMin, 100 * kMiB, 128 * kMiB, 256 * kMiB, 512 * kMiB, kGiB}) {
    errno = 0;
    p = fn::malloc_(n);
    if (p != nullptr || errno != ENOMEM) fail("malloc when exhausted", n, errno);
    if (p != nullptr) fn::free_(p);
    errno = 0;
    p = fn::calloc_(1, n);
    if (p != nullptr || errno != ENOMEM) fail("calloc when exhausted", n, errno);
    if (p != nullptr) fn::free_(p);
    errno = 0;
    p = fn::aligned_alloc_(4096, n);
    if (p != nullptr || errno != ENOMEM) fail("aligned_alloc when exhausted", n, errno);
    if (p != nullptr) fn::free_(p);
    p = nullptr;
    int rc = fn::posix_memalign_(&p, 64, n);
    if (rc != ENOMEM) fail("posix_memalign when exhausted", n, rc);
    if (rc == 0) fn::free_(p);
  }
  // A held block cannot grow into the exhausted space either, and stays intact.
  errno = 0;
  void* grown = fn::realloc_(held[0], kGiB);
  if (grown != nullptr || errno != ENOMEM) fail("realloc to 1 GiB when exhausted", kGiB, errno);
  if (grown != nullptr) held[0] = grown;
  if (static_cast<char*>(held[0])[0] != 1) fail("realloc failure damaged the block", 0, 0);

  for (void* h : held) fn::free_(h);
  held.clear();

  for (size_t n : {jstest::kHugeMin, 256 * kMiB, size_t{100}, 300 * kKiB}) {
    p = fn::malloc_(n);
    if (p == nullptr) {
      fail("malloc after freeing everything", n, errno);
      continue;
    }
    memset(p, 0x17, n < kMiB ? n : kMiB);
    static_cast<char*>(p)[n - 1] = 1;
    fn::free_(p);
  }
  for (int i = 0; i < 4; ++i) {
    p = fn::malloc_(jstest::kHugeMin);
    if (p == nullptr) fail("64 MiB blocks after recovery", jstest::kHugeMin, errno);
    held.push_back(p);
  }
  for (void* h : held) fn::free_(h);
  _exit(failures == 0 ? 0 : 1);
}

}  // namespace

TEST(Errno, RlimitAsHugeAllocationsFailThenRecover) {
  EXPECT_EXIT(ExhaustAddressSpaceChild(), testing::ExitedWithCode(0), "");
}

// A process whose heap region is the smallest jsmalloc reserves (256 MiB): 1000-byte
// blocks until malloc fails. The failure must be NULL with ENOMEM, and after freeing
// everything the same allocations succeed again.
JSTEST_CHILD_MAIN(exhaust_small_heap) {
  std::vector<void*> blocks;
  for (;;) {
    errno = 0;
    void* p = fn::malloc_(1000);
    if (p == nullptr) break;
    blocks.push_back(p);
    if (blocks.size() > (size_t{1} << 22)) return 3;  // 4 GiB: the limit was ignored
  }
  if (errno != ENOMEM) return 4;
  if (blocks.size() < 100000) return 5;  // far less than 256 MiB served
  for (void* p : blocks) fn::free_(p);
  for (int i = 0; i < 100000; ++i) {
    void* p = fn::malloc_(1000);
    if (p == nullptr) return 6;
    fn::free_(p);
  }
  return 0;
}

TEST(Errno, ExhaustedHeapFailsSmallAllocationsThenRecovers) {
  jstest::ChildResult r =
      jstest::RunSelfAsChild("exhaust_small_heap", {"JSMALLOC_HEAP_RESERVE=256m"}, {});
  ASSERT_TRUE(WIFEXITED(r.wait_status)) << "child status " << r.wait_status << "\n" << r.err;
  EXPECT_EQ(WEXITSTATUS(r.wait_status), 0) << r.err;
}
