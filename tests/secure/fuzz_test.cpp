// Fuzz-style: random sequences of every js_* call (malloc, calloc, realloc, aligned
// alloc, free, the sized frees, usable size, release) from a fixed seed, on two threads
// that also free each other's blocks. Every block is filled with bytes derived from its
// id and checked before each realloc and free; calloc's zeros, alignments and usable
// sizes are checked when a block is made. Bounded by a count of calls, not by time.
#include <atomic>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <jsmalloc.h>

#include "test_util.h"

namespace {

#if defined(JSTEST_UNDER_TSAN)
constexpr int kCallsDivisor = 10;
#else
constexpr int kCallsDivisor = 1;
#endif

struct Block {
  unsigned char* p = nullptr;
  size_t size = 0;
  size_t align = 0;  // 0: not an aligned allocation
  uint32_t id = 0;
};

unsigned char ByteOf(uint32_t id, size_t i) {
  return static_cast<unsigned char>((id * 131u) ^ (i * 7u) ^ (i >> 8));
}

void Fill(const Block& b) {
  for (size_t i = 0; i < b.size; ++i) b.p[i] = ByteOf(b.id, i);
}

// Whether the block still holds what Fill wrote (first and last 4 KiB of large ones).
bool Intact(const Block& b) {
  for (size_t i = 0; i < b.size; ++i) {
    if (b.size > 8192 && i == 4096) i = b.size - 4096;
    if (b.p[i] != ByteOf(b.id, i)) return false;
  }
  return true;
}

// Sizes across the small classes, with some large and a rare huge one.
size_t RandomSize(jstest::Rng& rng) {
  uint64_t r = rng.Next() % 1000;
  if (r < 600) return rng.Next() % 256;
  if (r < 900) return rng.Next() % 8192;
  if (r < 990) return rng.Next() % (128 * 1024 + 64);
  if (r < 999) return 128 * 1024 + rng.Next() % (2 << 20);
  return (65u << 20) + rng.Next() % 4096;
}

// One thread's calls. `shared` is a pool of blocks both threads put into and free from.
void RunCalls(uint64_t seed, int calls, std::vector<Block>* shared, std::mutex* shared_lock,
              std::atomic<int>* failures) {
  jstest::Rng rng(seed);
  std::vector<Block> live;
  uint32_t next_id = static_cast<uint32_t>(seed << 20);
  auto fail = [&](const char* what) {
    ADD_FAILURE() << what;
    failures->fetch_add(1);
  };
  auto made = [&](Block b, bool zeroed) {
    if (b.p == nullptr) {
      if (b.size != 0) fail("allocation failed");
      return;
    }
    if (js_usable_size(b.p) < b.size) fail("usable size below the request");
    if (b.align != 0 && reinterpret_cast<uintptr_t>(b.p) % b.align != 0) fail("misaligned");
    if (reinterpret_cast<uintptr_t>(b.p) % 16 != 0) fail("not 16-byte aligned");
    if (zeroed)
      for (size_t i = 0; i < b.size; ++i)
        if (b.p[i] != 0) {
          fail("calloc block not zeroed");
          break;
        }
    Fill(b);
    live.push_back(b);
  };
  auto release = [&](const Block& b) {
    if (!Intact(b)) fail("block changed while the program owned it");
    switch (rng.Next() % 3) {
      case 0:
        js_free(b.p);
        break;
      case 1:
        if (b.align != 0)
          js_free_aligned_sized(b.p, b.align, b.size);
        else
          js_free_sized(b.p, b.size);
        break;
      default:
        js_free(b.p);
    }
  };
  for (int call = 0; call < calls; ++call) {
    uint64_t op = rng.Next() % 100;
    if (live.size() > 3000) op = 60;  // bounded footprint: free
    if (op < 30) {
      Block b{nullptr, RandomSize(rng), 0, ++next_id};
      b.p = static_cast<unsigned char*>(js_malloc(b.size));
      made(b, false);
    } else if (op < 38) {
      size_t count = 1 + rng.Next() % 16;
      Block b{nullptr, count * (RandomSize(rng) / 16 + 1), 0, ++next_id};
      b.p = static_cast<unsigned char*>(js_calloc(count, b.size / count));
      b.size = count * (b.size / count);
      made(b, true);
    } else if (op < 44) {
      size_t align = size_t{16} << (rng.Next() % 14);  // 16 B .. 128 KiB
      Block b{nullptr, RandomSize(rng) % (256 * 1024) + 1, align, ++next_id};
      b.p = static_cast<unsigned char*>(js_aligned_alloc(align, b.size));
      made(b, false);
    } else if (op < 56 && !live.empty()) {
      size_t i = rng.Next() % live.size();
      Block b = live[i];
      if (!Intact(b)) fail("block changed before realloc");
      live[i] = live.back();
      live.pop_back();
      size_t size = RandomSize(rng);
      auto* q = static_cast<unsigned char*>(js_realloc(b.p, size));
      if (size == 0) continue;  // freed (realloc to 0)
      if (q == nullptr) {
        fail("realloc failed");
        continue;
      }
      // What the old block held survives up to the smaller size.
      for (size_t j = 0; j < (size < b.size ? size : b.size); ++j)
        if (q[j] != ByteOf(b.id, j)) {
          fail("realloc lost data");
          break;
        }
      made(Block{q, size, 0, ++next_id}, false);
    } else if (op < 90 && !live.empty()) {
      size_t i = rng.Next() % live.size();
      Block b = live[i];
      live[i] = live.back();
      live.pop_back();
      if (rng.Next() % 4 == 0) {  // to the other thread
        std::lock_guard<std::mutex> g(*shared_lock);
        shared->push_back(b);
      } else {
        release(b);
      }
    } else if (op < 98) {
      Block b;
      {
        std::lock_guard<std::mutex> g(*shared_lock);
        if (shared->empty()) continue;
        b = shared->back();
        shared->pop_back();
      }
      release(b);
    } else if (op == 98) {
      js_free(nullptr);
      js_free_sized(nullptr, 0);
    } else {
      js_release_free_memory();
    }
  }
  for (const Block& b : live) release(b);
}

TEST(Fuzz, RandomCallsOnOneThread) {
  std::vector<Block> shared;
  std::mutex lock;
  std::atomic<int> failures{0};
  RunCalls(1, 60000 / kCallsDivisor, &shared, &lock, &failures);
  for (const Block& b : shared) js_free(b.p);
  EXPECT_EQ(failures.load(), 0);
}

TEST(Fuzz, RandomCallsOnTwoThreadsFreeingEachOthersBlocks) {
  std::vector<Block> shared;
  std::mutex lock;
  std::atomic<int> failures{0};
  std::thread a(RunCalls, 2, 40000 / kCallsDivisor, &shared, &lock, &failures);
  std::thread b(RunCalls, 3, 40000 / kCallsDivisor, &shared, &lock, &failures);
  a.join();
  b.join();
  for (const Block& blk : shared) js_free(blk.p);
  EXPECT_EQ(failures.load(), 0);
}

}  // namespace
