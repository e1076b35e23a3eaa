// One death test per misuse, built twice: against the default library (misuse.default.*)
// and the secure one (misuse.secure.*), both through the js_* API. Each test states what
// its build does: the message it aborts with, a guard page's SIGSEGV, or nothing (the
// misuse goes unseen: run in a child, which must exit normally). README's table of
// misuses lists these tests' results.
#include <algorithm>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <jsmalloc.h>

#include "test_util.h"

namespace {

#if defined(JSMALLOC_SECURE)
constexpr bool kSecure = true;
#else
constexpr bool kSecure = false;
#endif

const auto kAborts = testing::KilledBySignal(SIGABRT);
const auto kFaults = testing::KilledBySignal(SIGSEGV);
const auto kUnseen = testing::ExitedWithCode(0);

std::string Message(const char* what, const void* p) {
  return std::string("jsmalloc: ") + what + " " + jstest::AddrRegex(p);
}

char* Bytes(void* p) {
  return static_cast<char*>(jstest::Opaque(p));
}

// A misuse only the secure library detects: there `body` aborts with `message`; in the
// default build it runs to its end unseen (body ends with std::exit(0)).
template <typename Body>
void ExpectSeenOnlyBySecure(Body body, const std::string& message) {
  if (kSecure)
    EXPECT_EXIT(body(), kAborts, message);
  else
    EXPECT_EXIT(body(), kUnseen, "");
}

// Frees 100 other blocks of `size`: the secure library keeps 4 freed objects per class
// (up to 4 KiB) in a quarantine, and each free evicts a random one to its list, so an
// object freed before is on its list after this (but for a chance of (3/4)^100).
void PushThroughTheQuarantine(size_t size) {
  std::vector<void*> others;
  for (int i = 0; i < 100; ++i) others.push_back(js_malloc(size));
  for (void* o : others) js_free(o);
}

// Allocates blocks of `size` until p comes back (at most 512, all kept), so a check made
// when an object is handed out again runs on p. Returns whether it came back.
bool AllocateUntil(void* p, size_t size) {
  std::vector<void*> got;
  bool found = false;
  for (int i = 0; i < 512 && !found; ++i) {
    got.push_back(js_malloc(size));
    found = got.back() == p;
  }
  return found;
}

// ---- double free, invalid free: both builds ----

// A block of `size` bytes freed twice: both builds abort naming it.
void ExpectDoubleFreeCaught(size_t size) {
  void* p = js_malloc(size);
  EXPECT_EXIT(
      {
        js_free(p);
        js_free(p);
      },
      kAborts, Message("double free", p));
  js_free(p);
}

// README row: double free, small, right after the first
TEST(Misuse, DoubleFreeSmall) {
  ExpectDoubleFreeCaught(100);
}

// README row: double free, small, after a write to the freed block's word 1
TEST(Misuse, DoubleFreeSmallAfterItsMarkerWasOverwritten) {
  // A write after free hit word 1 (the default build's free marker) first. The secure
  // library sees the object's zeroed tag instead; in the default one the block goes on
  // the list twice.
  void* p = js_malloc(64);
  auto body = [p] {
    js_free(p);
    reinterpret_cast<uint64_t*>(Bytes(p))[1] = 0x1234;
    js_free(p);
    std::exit(0);
  };
  ExpectSeenOnlyBySecure(body, Message("(double free|heap overflow)", p));
  js_free(p);
}

// README row: double free / realloc of freed memory, large and huge
TEST(Misuse, DoubleFreeLarge) {
  ExpectDoubleFreeCaught(300 * 1024);
}

// README row: double free / realloc of freed memory, large and huge
TEST(Misuse, DoubleFreeHuge) {
  ExpectDoubleFreeCaught(80 << 20);
}

// README row: free of a wild, stack, global, interior or misaligned pointer
TEST(Misuse, FreeOfAnInteriorPointer) {
  void* p = js_malloc(100);
  EXPECT_EXIT(js_free(Bytes(p) + 8), kAborts, Message("invalid free", Bytes(p) + 8));
  js_free(p);
}

// A block above 16 KiB is one to a span: a pointer to a page of it past the first is
// no object's start, in both builds.
// README row: free of a wild, stack, global, interior or misaligned pointer
TEST(Misuse, FreeOfAPointerToALaterPageOfABlockOfOnePerSpan) {
  void* p = js_malloc(40000);
  char* later = Bytes(p) + 2 * 8192;
  EXPECT_EXIT(js_free(later), kAborts, Message("invalid free", later));
  EXPECT_EXIT(js_realloc(later, 10), kAborts, Message("invalid realloc", later));
  js_free(p);
}

// README row: free of a wild, stack, global, interior or misaligned pointer
TEST(Misuse, FreeOfAStackPointer) {
  alignas(64) char buf[64];
  void* stack = jstest::Opaque(static_cast<void*>(buf));
  EXPECT_EXIT(js_free(stack), kAborts, Message("invalid free", stack));
}

// README row: realloc of freed memory, small
TEST(Misuse, ReallocOfAFreedBlock) {
  void* p = js_malloc(100);
  EXPECT_EXIT(
      {
        js_free(p);
        js_realloc(p, 200);
      },
      kAborts, Message("double free", p));
  js_free(p);
}

// README row: sized free / sized delete, size the class cannot hold
TEST(Misuse, SizedFreeWithASizeTheBlockCannotHold) {
  void* p = js_malloc(100);
  EXPECT_EXIT(js_free_sized(p, 4000), kAborts, "jsmalloc: sized free with wrong size");
  js_free(p);
}

// README row: sized free, size above the request but within its class; wrong alignment
TEST(Misuse, SizedFreeAboveTheRequestWithinItsClass) {
  // 110 for a 100-byte block: both in the 112-byte class. Only the secure library
  // knows the request.
  void* p = js_malloc(100);
  auto body = [p] {
    js_free_sized(p, 110);
    std::exit(0);
  };
  ExpectSeenOnlyBySecure(body, "jsmalloc: sized free with wrong size " + jstest::AddrRegex(p));
  js_free(p);
}

// README row: sized free, size above the request but within its class; wrong alignment
TEST(Misuse, AlignedFreeWithAnAlignmentTheBlockDoesNotHave) {
  // The second of two 64-aligned blocks of 64 bytes is not 4096-aligned.
  void* a = js_aligned_alloc(64, 64);
  void* b = js_aligned_alloc(64, 64);
  void* off = reinterpret_cast<uintptr_t>(a) % 4096 != 0 ? a : b;
  auto body = [off] {
    js_free_aligned_sized(off, 4096, 64);
    std::exit(0);
  };
  ExpectSeenOnlyBySecure(body,
                         "jsmalloc: aligned free with wrong alignment " + jstest::AddrRegex(off));
  js_free(a);
  js_free(b);
}

// ---- overflows ----

// README row: overflow of a small block by 1 byte, 8 bytes, many bytes
TEST(Misuse, OverflowByOneByteOfASmallBlock) {
  void* p = js_malloc(100);  // class 112 by default: the byte lands in the slack
  auto body = [p] {
    Bytes(p)[100] = 'x';
    js_free(p);
    std::exit(0);
  };
  ExpectSeenOnlyBySecure(body, Message("heap overflow", p));
  js_free(p);
}

// README row: overflow of a small block by 1 byte, 8 bytes, many bytes
TEST(Misuse, OverflowByOneByteSeenByRealloc) {
  void* p = js_malloc(100);
  auto body = [p] {
    Bytes(p)[100] = 0;  // a zero, as a string's terminator would be
    js_realloc(p, 5000);
    std::exit(0);
  };
  ExpectSeenOnlyBySecure(body, Message("heap overflow", p));
  js_free(p);
}

// README row: overflow of a small block by 1 byte, 8 bytes, many bytes
TEST(Misuse, OverflowBy8BytesIntoALiveNeighbour) {
  void* p = js_malloc(112);  // exactly a class by default: the write reaches the neighbour
  auto body = [p] {
    memset(Bytes(p) + 112, 'x', 8);
    js_free(p);
    std::exit(0);
  };
  ExpectSeenOnlyBySecure(body, Message("heap overflow", p));
  js_free(p);
}

// README row: overflow of a small block by 1 byte, 8 bytes, many bytes
TEST(Misuse, OverflowByManyBytesOfASmallBlock) {
  void* p = js_malloc(64);
  auto body = [p] {
    memset(Bytes(p), 'x', 200);  // over its neighbours, free or in use
    js_free(p);
    std::exit(0);
  };
  ExpectSeenOnlyBySecure(body, Message("heap overflow", p));
  js_free(p);
}

// README row: underflow into the block below
TEST(Misuse, UnderflowIntoTheBlockBefore) {
  // A write just before a block lands in the tail of the object before it: in the
  // secure library its tag, seen when that object is freed. Both builds put 100 bytes
  // in the 112-byte class; two neighbours are found among 256 blocks (the secure
  // library hands a fresh run out in a random order, so 32 blocks had none once in a
  // while).
  std::vector<char*> ps;
  for (int i = 0; i < 256; ++i) ps.push_back(Bytes(js_malloc(100)));
  std::vector<char*> sorted = ps;
  std::sort(sorted.begin(), sorted.end());
  char* lower = nullptr;
  for (size_t i = 0; i + 1 < sorted.size() && lower == nullptr; ++i)
    if (sorted[i + 1] - sorted[i] == 112) lower = sorted[i];
  ASSERT_NE(lower, nullptr);
  auto body = [lower] {
    lower[111] = 'x';  // the upper block's byte -1
    js_free(lower);
    std::exit(0);
  };
  ExpectSeenOnlyBySecure(body, Message("heap overflow", lower));
  for (char* p : ps) js_free(p);
}

// README row: overflow past a large block's size
TEST(Misuse, OverflowByOneByteOfALargeBlock) {
  // Both builds: the bytes after a large block's request hold a canary.
  void* p = js_malloc(300 * 1024 + 10);
  EXPECT_EXIT(
      {
        Bytes(p)[300 * 1024 + 10] = 'x';
        js_free(p);
      },
      kAborts, Message("heap overflow", p));
  js_free(p);
}

// README row: overflow past a large block's last page, past a huge block
TEST(Misuse, OverflowOfALargeBlockEndingOnAPage) {
  // No slack: the secure library's guard page faults at once; the default build's next
  // page may be anything of the heap.
  const size_t size = 40 * 8192;
  void* p = js_malloc(size);
  if (kSecure) {
    EXPECT_EXIT(Bytes(p)[size] = 'x', kFaults, "");
  } else {
    SUCCEED() << "not detected by the default build (no slack, no guard page)";
  }
  js_free(p);
}

// README row: overflow past a large block's last page, past a huge block
TEST(Misuse, OverflowOfALargeBlockOnAFreedOnesPages) {
  // The secure library closes a freed large block's pages; a block handed out over them
  // opens all but its last page, its guard, which faults at once as a new block's does.
  const size_t page = 8192;
  void* old = js_malloc(60 * page);
  ASSERT_NE(old, nullptr);
  memset(old, 'o', 60 * page);
  js_free(old);
  const size_t size = 40 * page;
  char* p = Bytes(js_malloc(size));
  ASSERT_NE(p, nullptr);
  memset(p, 'x', size);  // every page of the request is the program's
  EXPECT_EQ(std::count(p, p + size, 'x'), static_cast<long>(size));
  if (kSecure) {
    EXPECT_EXIT(p[size] = 'x', kFaults, "");
  } else {
    SUCCEED() << "not detected by the default build (no slack, no guard page)";
  }
  js_free(p);
}

// A large block grown by realloc a page at a time, 48 steps, each step checked: the
// bytes it had are kept, and in the secure library what it gained reads as zero (its
// old guard page and the pages it took may hold old data: the heap's pages are dirtied
// first). Returns the block, of `*size` bytes, and how many steps kept its address.
char* GrowLargeBlockStepwise(size_t* size, int* in_place) {
  for (int i = 0; i < 8; ++i) {
    void* dirt = js_malloc(size_t{1} << 20);
    memset(dirt, 'd', size_t{1} << 20);
    js_free(dirt);
  }
  const size_t page = 8192;
  size_t n = 40 * page + 100;
  char* p = Bytes(js_malloc(n));
  memset(p, 'a', n);
  *in_place = 0;
  for (int step = 0; step < 48; ++step) {
    size_t grown = n + page + 100 * (step % 3);
    char* q = Bytes(js_realloc(p, grown));
    EXPECT_NE(q, nullptr);
    if (q == nullptr) break;
    *in_place += q == p;
    EXPECT_EQ(std::count(q, q + n, 'a'), static_cast<long>(n)) << "step " << step;
    if (kSecure) {
      EXPECT_EQ(std::count(q + n, q + grown, 0), static_cast<long>(grown - n)) << "step " << step;
    }
    memset(q + n, 'a', grown - n);
    p = q;
    n = grown;
  }
  *size = n;
  return p;
}

// README row: overflow past a large block's size
TEST(Misuse, OverflowPastALargeBlockGrownByRealloc) {
  // The canary follows the new size, wherever the block grew: both builds see it.
  size_t n;
  int in_place;
  char* p = GrowLargeBlockStepwise(&n, &in_place);
  // Both builds grow a block into the free pages after it: most steps stay.
  EXPECT_GE(in_place, 24);
  EXPECT_EXIT(
      {
        p[n] = 'x';
        js_free(p);
      },
      kAborts, Message("heap overflow", p));
  js_free(p);
}

// README row: overflow past a large block's last page, past a huge block
TEST(Misuse, OverflowPastTheLastPageOfALargeBlockGrownByRealloc) {
  // Grown in place, the secure library's block has its guard after its new last page;
  // where the old guard was, the block is the program's.
  const size_t page = 8192;
  void* p = js_malloc(20 * page);
  void* q = js_realloc(p, 30 * page);
  ASSERT_NE(q, nullptr);
  Bytes(q)[20 * page] = 'x';
  void* r = js_realloc(q, 30 * page - 50);  // the same pages: stays, in both builds
  EXPECT_EQ(r, q);
  r = js_realloc(r, 30 * page);
  if (kSecure) {
    EXPECT_EXIT(Bytes(r)[30 * page] = 'x', kFaults, "");
  } else {
    SUCCEED() << "not detected by the default build (no slack, no guard page)";
  }
  js_free(r);
}

// README row: overflow past a large block's last page, past a huge block
TEST(Misuse, OverflowOfAHugeBlock) {
  const size_t size = size_t{80} << 20;
  void* p = js_malloc(size);
  if (kSecure) {
    EXPECT_EXIT(Bytes(p)[size] = 'x', kFaults, "");
  } else {
    SUCCEED() << "not detected by the default build (writes its mapping's slack or faults)";
  }
  js_free(p);
}

// ---- use after free ----

// README row: write after free, small block
TEST(Misuse, WriteAfterFreeOfASmallBlock) {
  void* p = js_malloc(256);
  auto body = [p] {
    js_free(p);
    Bytes(p)[100] = 'x';  // past the link and the free marker
    PushThroughTheQuarantine(256);
    AllocateUntil(p, 256);
    std::exit(0);
  };
  ExpectSeenOnlyBySecure(body, Message("write after free", p));
  js_free(p);
}

// README row: write after free over the free-list link
#if defined(JSMALLOC_SECURE)  // the default build would follow the damaged link
TEST(Misuse, WriteAfterFreeOfTheFreeListLink) {
  // Word 0 of a free object is its list link. The secure library checks each link it
  // pops; the default build would follow it (a crash later, or worse), so it is not run.
  // 5000 bytes: a class with one quarantine slot, which the free takes half of the time.
  // On its list, the object is popped by one of the mallocs: the link is checked. In
  // the slot, the frees after evict it (each one half of the time), and its word 0, 0
  // there, is checked.
  void* p = js_malloc(5000);
  EXPECT_EXIT(
      {
        js_free(p);
        reinterpret_cast<uintptr_t*>(Bytes(p))[0] ^= 0x1000;
        std::vector<void*> others;
        for (int i = 0; i < 64; ++i) others.push_back(jstest::Opaque(js_malloc(5000)));
        for (void* o : others) js_free(o);
      },
      kAborts, Message("(corrupted free list|write after free)", p));
  js_free(p);
}
#endif

// README row: write after free, small block
#if defined(JSMALLOC_SECURE)  // the default build would follow the damaged link
TEST(Misuse, WriteAfterFreeOfAQuarantinedObjectsFirstWords) {
  // While in the quarantine, a free object's first two words are known (0, the free
  // marker): checked when a later free evicts it. Unseen by the default build, which
  // would follow the link later, so it is not run there.
  void* p = js_malloc(48);
  EXPECT_EXIT(
      {
        js_free(p);
        reinterpret_cast<uintptr_t*>(Bytes(p))[0] = 0x1234;
        PushThroughTheQuarantine(48);
      },
      kAborts, Message("write after free", p));
  js_free(p);
}
#endif

// README row: read after free (small block); read of a new block (uninitialised)
TEST(Misuse, ReadAfterFreeSeesZerosInTheSecureLibrary) {
  // What a read of freed memory sees: the secure library zeroed the object at free.
  char* p = Bytes(js_malloc(256));
  memset(p, 'x', 256);
  js_free(p);
  uint64_t stale = 0;
  memcpy(&stale, p + 64, sizeof stale);  // the program's mistake, on purpose
  if (kSecure)
    EXPECT_EQ(stale, 0u);
  else
    EXPECT_EQ(stale, 0x7878787878787878u);  // the old data, unseen
}

// Freed block p of `size` bytes, allocated again: the secure library hands it out as
// zeros, the default build with the old bytes.
void ExpectHandedOutAgainAsZerosOnlyBySecure(char* p, size_t size) {
  PushThroughTheQuarantine(size);
  char* q = nullptr;
  std::vector<void*> kept;
  for (int i = 0; i < 512 && q != p; ++i) kept.push_back(q = Bytes(js_malloc(size)));
  ASSERT_EQ(q, p);
  bool all_zero = true;
  for (size_t i = 0; i < size; ++i) all_zero = all_zero && q[i] == 0;
  EXPECT_EQ(all_zero, kSecure);
  for (void* k : kept) js_free(k);
}

// README row: read after free (small block); read of a new block (uninitialised)
TEST(Misuse, UninitialisedReadSeesZerosInTheSecureLibrary) {
  char* p = Bytes(js_malloc(256));
  memset(p, 'x', 256);
  js_free(p);
  ExpectHandedOutAgainAsZerosOnlyBySecure(p, 256);
}

// README row: read after free (small block); read of a new block (uninitialised)
TEST(Misuse, UninitialisedReadOfABlockShrunkInPlaceSeesZeros) {
  // Realloc keeps a block that shrinks within its object, and free zeroes only what the
  // request and its canary cover: the old request's tail must be zero by then, or the
  // object would fail its zero check when it is handed out again.
  char* p = Bytes(js_malloc(1000));
  memset(p, 'x', 1000);
  ASSERT_EQ(js_realloc(p, 700), p);
  js_free(p);
  ExpectHandedOutAgainAsZerosOnlyBySecure(p, 1000);
}

// README row: write after free, small block
TEST(Misuse, WriteAfterFreeIntoTheSlackOfAnAlignedBlock) {
  // A 16-byte block aligned at 4 KiB has an object of 4 KiB or more. Free zeroes only
  // its request, canary and tag; the zero check at reuse still covers all of it.
  const size_t align = 4096;
  void* p = js_aligned_alloc(align, 16);
  auto body = [p] {
    js_free(p);
    Bytes(p)[3000] = 'x';
    std::vector<void*> others;
    for (int i = 0; i < 100; ++i) others.push_back(js_aligned_alloc(align, 16));
    for (void* o : others) js_free(o);
    for (int i = 0; i < 512 && js_aligned_alloc(align, 16) != p; ++i) {
    }
    std::exit(0);
  };
  ExpectSeenOnlyBySecure(body, Message("write after free", p));
  js_free(p);
}

// The same for a new large block. A freed one keeps its data in the default build; in
// the secure library its pages are inaccessible until they are handed out again.
constexpr size_t kLargeBlock = 256 * 1024;

// README row: read after free, large block
TEST(Misuse, ReadAfterFreeOfALargeBlock) {
  char* p = Bytes(js_malloc(kLargeBlock));
  memset(p, 'x', kLargeBlock);
  js_free(p);
  auto read_freed = [p] {  // the program's mistake, on purpose
    return *reinterpret_cast<volatile uint64_t*>(p + kLargeBlock / 2);
  };
  if (kSecure) {
    EXPECT_EXIT(read_freed(), kFaults, "");
  } else {
    EXPECT_EQ(read_freed(), 0x7878787878787878u);
  }
}

// README row: write after free, large block
TEST(Misuse, WriteAfterFreeOfALargeBlock) {
  // The secure library: the write faults, and the block's pages, handed out again, read
  // as zero. The default build: the write lands in the free pages.
  char* p = Bytes(js_malloc(kLargeBlock));
  memset(p, 'x', kLargeBlock);
  js_free(p);
  if (kSecure) {
    EXPECT_EXIT(p[100] = 'y', kFaults, "");
    char* q = nullptr;
    std::vector<void*> kept;
    for (int i = 0; i < 64 && q != p; ++i) kept.push_back(q = Bytes(js_malloc(kLargeBlock)));
    ASSERT_EQ(q, p) << "the freed block did not come back";
    q[kLargeBlock - 1] = 'z';  // open again: the program's once more
    EXPECT_EQ(q[100], 0);
    for (void* k : kept) js_free(k);
  } else {
    EXPECT_EXIT((p[100] = 'y', std::exit(0)), kUnseen, "");
  }
}

// README row: read after free (small block); read of a new block (uninitialised)
TEST(Misuse, UninitialisedReadOfALargeBlockSeesZerosInTheSecureLibrary) {
  // A block written, freed and handed out again: the secure library zeroes it when it
  // is handed out (its pages may hold old data).
  char* p = Bytes(js_malloc(kLargeBlock));
  memset(p, 'x', kLargeBlock);
  js_free(p);
  char* q = nullptr;
  std::vector<void*> kept;
  for (int i = 0; i < 64 && q != p; ++i) kept.push_back(q = Bytes(js_malloc(kLargeBlock)));
  ASSERT_EQ(q, p) << "the freed block did not come back";
  size_t nonzero = 0;
  for (size_t i = 0; i < kLargeBlock; ++i) nonzero += q[i] != 0;
  if (kSecure)
    EXPECT_EQ(nonzero, 0u);
  else
    EXPECT_GT(nonzero, 0u);  // the default build hands out the old bytes
  for (void* k : kept) js_free(k);
}

// ---- layout ----

// README row: reuse order
TEST(Misuse, ReuseOrderIsRandomisedInTheSecureLibrary) {
  // 16 objects freed, then 16 allocated: the default build hands them back last freed
  // first (LIFO), the secure library in an order an attacker cannot plan on. A few
  // rounds first let the thread cache's list grow to hold them all.
  std::vector<void*> ps(16);
  for (int round = 0; round < 4; ++round) {
    for (void*& p : ps) p = js_malloc(80);
    for (void* p : ps) js_free(p);
  }
  for (void*& p : ps) p = js_malloc(80);
  for (void* p : ps) js_free(p);
  std::vector<void*> again;
  for (int i = 0; i < 16; ++i) again.push_back(js_malloc(80));
  std::vector<void*> lifo(ps.rbegin(), ps.rend());
  EXPECT_EQ(again == lifo, !kSecure);
  for (void* p : again) js_free(p);
}

// README row: order of a new thread's first blocks of a size
TEST(Misuse, FreshBlocksComeInARandomOrderInTheSecureLibrary) {
  // A new thread's first 64 blocks of 24 bytes come from a span's never-used objects: the
  // default build hands them out one after the other, the secure library draws each
  // among the next 32 (one after the other by a chance of 32^-63).
  std::vector<uintptr_t> got;
  std::thread([&] {
    for (int i = 0; i < 64; ++i) got.push_back(reinterpret_cast<uintptr_t>(js_malloc(24)));
    for (uintptr_t p : got) js_free(reinterpret_cast<void*>(p));
  }).join();
  bool one_after_another = got[1] > got[0];
  for (size_t i = 2; i < got.size(); ++i)
    one_after_another &= got[i] - got[i - 1] == got[1] - got[0];
  EXPECT_EQ(one_after_another, !kSecure);
}

// README row: order of a new thread's first blocks of a size
TEST(Misuse, FreshBlocksOfACpuComeInARandomOrder) {
  // As above, in either front-end: the caches and the spans begun are first used up
  // (4096 blocks kept), so that the next 256 blocks of 24 bytes (the 32-byte class, with
  // the secure library's tag too) come from never-used objects. The default build hands
  // them out next to each other, up or down (a CPU's stack goes out last in first),
  // the secure library drawn at random within windows of 32: a step to a neighbour is
  // then about one in 16.
  std::vector<void*> kept;
  for (int i = 0; i < 4096; ++i) kept.push_back(jstest::Opaque(js_malloc(24)));
  std::vector<uintptr_t> got;
  for (int i = 0; i < 256; ++i) got.push_back(reinterpret_cast<uintptr_t>(js_malloc(24)));
  int neighbours = 0;
  for (size_t i = 1; i < got.size(); ++i)
    neighbours += got[i] - got[i - 1] == 32 || got[i - 1] - got[i] == 32;
  if (kSecure) {
    EXPECT_LT(neighbours, 64) << "of 255 steps";
  } else {
    EXPECT_GT(neighbours, 160) << "of 255 steps";
  }
  for (uintptr_t p : got) js_free(reinterpret_cast<void*>(p));
  for (void* p : kept) js_free(p);
}

// README row: malloc_usable_size
TEST(Misuse, UsableSizeIsTheRequestInTheSecureLibrary) {
  void* p = js_malloc(100);
  EXPECT_EQ(js_usable_size(p), kSecure ? 100u : 112u);
  memset(p, 'x', js_usable_size(p));  // all of it is the program's: no report at free
  js_free(p);
}

}  // namespace
