// RLIMIT_AS lowered while the program runs: allocations past it fail with ENOMEM, and
// succeed again once memory is freed. Every case runs in a child process (a death
// test that must exit 0), so the lowered limit never reaches the other tests; the
// child describes what went wrong on stderr.
#include <errno.h>
#include <pthread.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstddef>
#include <cstdio>
#include <new>

#include <gtest/gtest.h>

#include "jsmalloc.h"
#include "test_util.h"

namespace {

using jstest::kMiB;
constexpr size_t kRoom = 256 * kMiB;  // what the lowered limit leaves the program
constexpr size_t kMaxBlocks = 4096;

// The pointers live here, not in a container: under the limit the test itself must not
// need memory it cannot get.
void* g_blocks[kMaxBlocks];

bool SetLimit(size_t bytes) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_AS, &rl) != 0) return false;
  rl.rlim_cur = bytes;
  return setrlimit(RLIMIT_AS, &rl) == 0;
}

[[noreturn]] void Fail(const char* what, size_t a = 0, size_t b = 0) {
  fprintf(stderr, "%s (%zu, %zu)\n", what, a, b);
  _exit(1);
}

// Free bytes the allocator already holds: reusable without growing, so a bound on what
// the lowered limit lets through has to allow for them.
size_t HeldFreeBytes() {
  js_stats_t s;
  js_get_stats(&s);
  return s.thread_cached + s.transfer_cached + s.central_free + s.page_heap_free + s.released;
}

// Lowers the soft RLIMIT_AS to the process's VM size plus kRoom. The VM size must be
// the program's own, without the heap's unused reservation (1 TiB by default): under a
// finite limit the heap gives that back when it next grows, so a first, loose limit and
// enough 1 MiB blocks to make it grow come first. Returns the bytes the allocator held
// free when the limit was set.
size_t LowerLimitToVmPlusRoom() {
  size_t vm_before = jstest::VmBytes();
  // Room for the allocator's metadata while it grows; nothing else maps meanwhile.
  if (!SetLimit(vm_before + 64 * kMiB)) Fail("setrlimit failed", vm_before);
  size_t n = 0;
  size_t vm = vm_before;
  while (n < kMaxBlocks && vm + 128 * kMiB > vm_before) {
    g_blocks[n] = js_malloc(kMiB);
    if (g_blocks[n++] == nullptr) break;
    vm = jstest::VmBytes();
  }
  for (size_t i = 0; i < n; ++i) js_free(g_blocks[i]);
  if (vm + 128 * kMiB > vm_before)
    Fail("the heap kept its unused reservation under a finite RLIMIT_AS: VM before, after",
         vm_before, vm);
  size_t held = HeldFreeBytes();
  if (!SetLimit(jstest::VmBytes() + kRoom)) Fail("setrlimit failed");
  return held;
}

// Allocates `size`-byte blocks into g_blocks until one fails; returns how many
// succeeded. The failure must be ENOMEM.
size_t AllocateUntilNull(size_t size) {
  size_t n = 0;
  errno = 0;
  while (n < kMaxBlocks && (g_blocks[n] = js_malloc(size)) != nullptr) ++n;
  if (n == kMaxBlocks) Fail("no allocation failed under the limit: blocks, size", n, size);
  if (errno != ENOMEM) Fail("the failed allocation set errno (not ENOMEM)", size_t(errno));
  return n;
}

void HeapBlocksFailWithEnomemThenReuseFreedPages() {
  size_t held = LowerLimitToVmPlusRoom();
  size_t n = AllocateUntilNull(kMiB);
  // The heap grows a hugepage at a time and its metadata takes some of the room; what
  // it held free already comes on top.
  if (n * kMiB <= 64 * kMiB) Fail("far less than the limit allowed: MiB", n);
  if (n * kMiB >= kRoom + held + 32 * kMiB) Fail("past the limit: MiB, held free", n, held);
  // calloc and realloc fail alike.
  errno = 0;
  if (js_calloc(kMiB, 1) != nullptr || errno != ENOMEM) Fail("calloc past the limit");
  void* small = js_malloc(64);
  if (small == nullptr) Fail("no 64-byte block");
  errno = 0;
  if (js_realloc(small, kMiB) != nullptr || errno != ENOMEM) Fail("realloc past the limit");
  js_free(small);
  // Freed heap pages are reused without any new mapping.
  for (size_t i = 0; i < n; i += 2) js_free(g_blocks[i]);
  for (size_t i = 0; i < n; i += 2) {
    g_blocks[i] = js_malloc(kMiB);
    if (g_blocks[i] == nullptr) Fail("a freed 1 MiB block was not reused: block, of", i, n);
  }
  for (size_t i = 0; i < n; ++i) js_free(g_blocks[i]);
  _exit(0);
}

void HugeBlocksFailWithEnomemThenMapAgain() {
  LowerLimitToVmPlusRoom();
  // The allocator's own mappings share the limit with the heap: 100 MiB ones fit twice.
  size_t n = AllocateUntilNull(100 * kMiB);
  if (n != 2) Fail("100 MiB blocks under a 256 MiB room: got", n);
  void* huge[2] = {g_blocks[0], g_blocks[1]};
  // Heap growth is refused too, beyond the 56 MiB left and what the heap holds free.
  size_t held = HeldFreeBytes();
  size_t m = AllocateUntilNull(kMiB);
  if (m * kMiB >= 56 * kMiB + held + 8 * kMiB) Fail("heap growth past the limit: MiB", m);
  for (size_t i = 0; i < m; ++i) js_free(g_blocks[i]);
  // Freeing a huge block gives its address space back: another one fits again.
  js_free(huge[0]);
  huge[0] = js_malloc(100 * kMiB);
  if (huge[0] == nullptr) Fail("no 100 MiB block after one was freed");
  js_free(huge[0]);
  js_free(huge[1]);
  _exit(0);
}

void OperatorNewThrowsBadAllocPastTheLimit() {
  LowerLimitToVmPlusRoom();
  size_t n = 0;
  bool threw = false;
  try {
    while (n < kMaxBlocks) {
      g_blocks[n] = ::operator new(kMiB);
      ++n;
    }
  } catch (const std::bad_alloc&) {
    threw = true;
  }
  if (!threw) Fail("operator new never threw: MiB", n);
  for (size_t i = 0; i < n; ++i) ::operator delete(g_blocks[i]);
  _exit(0);
}

void* TouchArgument(void* arg) {
  static_cast<char*>(arg)[0] = 2;
  return nullptr;
}

// A limit far below the VM size the reservation makes (1 TiB and more), but far above
// what the program maps: the first mapping the allocator is refused makes the heap give
// its unused reservation back, and the mapping succeeds. Threads can start after that.
void HugeBlockRightAfterALimitBelowTheReservation() {
  constexpr size_t kLimit = size_t{8} << 30;
  if (jstest::VmBytes() <= 2 * kLimit) Fail("the heap reserved less than expected");
  if (!SetLimit(kLimit)) Fail("setrlimit failed");
  char* p = static_cast<char*>(js_malloc(100 * kMiB));
  if (p == nullptr) Fail("no 100 MiB block under an 8 GiB limit");
  p[0] = 1;
  p[100 * kMiB - 1] = 1;
  if (jstest::VmBytes() >= kLimit) Fail("VM size still above the limit", jstest::VmBytes());
  pthread_t t;
  if (pthread_create(&t, nullptr, TouchArgument, p) != 0) Fail("no thread under the limit");
  pthread_join(t, nullptr);
  if (p[0] != 2) Fail("the thread did not run");
  js_free(p);
  _exit(0);
}

TEST(Rlimit, HugeBlockRightAfterALimitBelowTheReservation) {
  EXPECT_EXIT(HugeBlockRightAfterALimitBelowTheReservation(), testing::ExitedWithCode(0), "");
}

TEST(Rlimit, HeapBlocksFailWithEnomemThenReuseFreedPages) {
  EXPECT_EXIT(HeapBlocksFailWithEnomemThenReuseFreedPages(), testing::ExitedWithCode(0), "");
}

TEST(Rlimit, HugeBlocksFailWithEnomemThenMapAgain) {
  EXPECT_EXIT(HugeBlocksFailWithEnomemThenMapAgain(), testing::ExitedWithCode(0), "");
}

TEST(Rlimit, OperatorNewThrowsBadAllocPastTheLimit) {
  EXPECT_EXIT(OperatorNewThrowsBadAllocPastTheLimit(), testing::ExitedWithCode(0), "");
}

}  // namespace
