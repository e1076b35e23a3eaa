// Random mix over all size classes, per thread.
//
// Each thread owns `slots` slots. A step picks a random slot: if it holds a block, the
// block is verified and freed (one time in ten it is realloc'ed to a new random size
// instead); if it is empty, a block is allocated with malloc (85 %), calloc (10 %,
// checked to be zero) or aligned_alloc (5 %, alignment 16..128, checked; larger
// alignments are the `aligned` workload's business). Sizes are
// log-uniform over 1 B .. 32 KiB (every small size class equally likely per power of
// two), and one block in fifty is drawn from 32 KiB .. 512 KiB.
//
// The total number of steps is fixed and split over the threads.
// Full scale: 40,000,000 steps, 2,000 slots per thread.
//
// A block's first and last 8 bytes are written (jsb::fill), so a block of 32 KiB and up
// is mostly pages the program never touches: its peak RSS counts how many pages freed
// blocks left resident, which an allocator that gives freed large blocks back to the OS
// at once (jemalloc) keeps low at a cost in time. --touch 1 writes every byte of each
// new block instead, as a program using its memory would (docs/performance.md,
// 2026-12-07 fourth session).
#include <thread>

#include "common.h"

namespace {

struct Slot {
  void* p = nullptr;
  size_t size = 0;
  uint64_t tag = 0;
};

bool g_touch = false;  // --touch: write whole blocks

// A new (or realloc'ed) block's contents: its tag at both ends, all of it with --touch.
void write_block(const Slot& s) {
  if (g_touch) std::memset(s.p, 0x5a, s.size);
  jsb::fill(s.p, s.size, s.tag);
}

struct alignas(64) Result {
  uint64_t sum = 0;
};

size_t draw_size(jsb::Rng& rng) {
  return rng.chance(1, 50) ? rng.log_uniform(32768, 524288) : rng.log_uniform(1, 32768);
}

uint64_t release(Slot& s) {
  if (!jsb::check(s.p, s.size, s.tag)) jsb::fail("mix: block of %zu bytes damaged", s.size);
  std::free(s.p);
  const uint64_t t = s.tag;
  s = Slot{};
  return t;
}

void worker(uint64_t seed, size_t index, size_t nslots, size_t steps, Result& res) {
  jsb::Rng rng(seed, index);
  std::vector<Slot> slots(nslots);
  uint64_t sum = 0, id = index << 40;
  for (size_t k = 0; k < steps; ++k) {
    Slot& s = slots[rng.below(nslots)];
    if (s.p != nullptr) {
      if (rng.chance(1, 10)) {
        // realloc keeps the old contents up to the smaller size: check the head.
        const size_t size = draw_size(rng);
        void* np = jsb::check_alloc(std::realloc(s.p, size), size);
        const size_t keep = std::min(std::min(size, s.size), size_t{8});
        uint64_t head = 0, want = 0;
        std::memcpy(&head, np, keep);
        std::memcpy(&want, &s.tag, keep);
        if (head != want) jsb::fail("mix: realloc from %zu to %zu lost data", s.size, size);
        sum += s.tag;
        s.p = np;
        s.size = size;
        s.tag = jsb::mix64(++id);
        write_block(s);
      } else {
        sum += release(s);
      }
      continue;
    }
    const size_t size = draw_size(rng);
    const uint64_t kind = rng.below(100);
    void* p;
    if (kind < 85) {
      p = std::malloc(size);
    } else if (kind < 95) {
      p = std::calloc(1, size);
      jsb::check_alloc(p, size);
      const auto* b = static_cast<const unsigned char*>(p);
      for (size_t i = 0; i < std::min<size_t>(size, 16); ++i)
        if (b[i] != 0 || b[size - 1 - i] != 0) jsb::fail("mix: calloc(%zu) not zeroed", size);
    } else {
      const size_t align = size_t{16} << rng.below(4);  // 16 .. 128
      const size_t rounded = (size + align - 1) / align * align;
      p = std::aligned_alloc(align, rounded);
      jsb::check_alloc(p, rounded);
      if (reinterpret_cast<uintptr_t>(p) % align != 0)
        jsb::fail("mix: aligned_alloc(%zu, %zu) returned %p", align, rounded, p);
    }
    jsb::check_alloc(p, size);
    s.p = p;
    s.size = size;
    s.tag = jsb::mix64(++id);
    write_block(s);
  }
  for (Slot& s : slots)
    if (s.p != nullptr) sum += release(s);
  res.sum = sum;
}

}  // namespace

int main(int argc, char** argv) {
  jsb::Cli cli(argc, argv, "mix", {"slots", "touch"}, "[--slots N] [--touch 0|1]");
  cli.announce();
  const size_t nslots = static_cast<size_t>(cli.num("slots", 2000, 1));
  g_touch = cli.num("touch", 0, 0, 1) == 1;
  const size_t steps = cli.scaled(40e6);
  const size_t nthreads = static_cast<size_t>(cli.threads);
  std::vector<Result> results(nthreads);
  const double t0 = jsb::now_ms();
  std::vector<std::thread> threads;
  for (size_t t = 0; t < nthreads; ++t)
    threads.emplace_back(worker, cli.seed, t, nslots, jsb::share(steps, nthreads, t),
                         std::ref(results[t]));
  for (auto& th : threads) th.join();
  jsb::report_phase("mix", jsb::now_ms() - t0);
  uint64_t sum = 0;
  for (const Result& r : results) sum += r.sum;
  jsb::report_ops(steps);
  jsb::report_rss_after_free();
  return jsb::report_checksum(sum, true);
}
