// Large allocations: 64 KiB .. 32 MiB, log-uniform, touched page by page.
//
// Each thread keeps `slots` large blocks. A step picks a random slot, verifies and
// frees the block in it, allocates a new one of random size and writes one word into
// every 4 KiB page of it (as a program that uses its memory would). What this measures
// is mostly how an allocator caches, maps and unmaps large blocks: an allocator that
// unmaps on every free pays a page fault per page on every reuse, one that caches
// keeps a larger resident set.
//
// The total number of steps is fixed and split over the threads.
// Full scale: 20,000 steps, 4 slots per thread.
#include <thread>

#include "common.h"

namespace {

struct Block {
  unsigned char* p = nullptr;
  size_t size = 0;
  uint64_t tag = 0;
};

struct alignas(64) Result {
  uint64_t sum = 0;
};

uint64_t verify_free(Block& b) {
  const uint64_t sum = jsb::check_pages(b.p, b.size, b.tag, "large");
  std::free(b.p);
  b = Block{};
  return sum;
}

void worker(uint64_t seed, size_t index, size_t nslots, size_t steps, size_t lo, size_t hi,
            Result& res) {
  jsb::Rng rng(seed, index);
  std::vector<Block> blocks(nslots);
  uint64_t sum = 0;
  for (size_t k = 0; k < steps; ++k) {
    Block& b = blocks[rng.below(nslots)];
    if (b.p != nullptr) sum += verify_free(b);
    b.size = rng.log_uniform(lo, hi);
    b.p = static_cast<unsigned char*>(jsb::check_alloc(std::malloc(b.size), b.size));
    b.tag = jsb::mix64((index << 40) + k) & ~uint64_t{0xffffffff};
    jsb::fill_pages(b.p, b.size, b.tag);
  }
  for (Block& b : blocks)
    if (b.p != nullptr) sum += verify_free(b);
  res.sum = sum;
}

}  // namespace

int main(int argc, char** argv) {
  jsb::Cli cli(argc, argv, "large", {"slots", "min", "max"},
               "[--slots N] [--min BYTES] [--max BYTES]");
  cli.announce();
  const size_t nslots = static_cast<size_t>(cli.num("slots", 4, 1));
  const size_t lo = static_cast<size_t>(cli.num("min", 64 * 1024, 4096));
  const size_t hi = static_cast<size_t>(cli.num("max", 32 * 1024 * 1024));
  if (hi < lo) cli.refuse("max", "at least --min");
  const size_t steps = cli.scaled(20000);
  const size_t nthreads = static_cast<size_t>(cli.threads);
  std::vector<Result> results(nthreads);
  const double t0 = jsb::now_ms();
  std::vector<std::thread> threads;
  for (size_t t = 0; t < nthreads; ++t)
    threads.emplace_back(worker, cli.seed, t, nslots, jsb::share(steps, nthreads, t), lo, hi,
                         std::ref(results[t]));
  for (auto& th : threads) th.join();
  jsb::report_phase("large", jsb::now_ms() - t0);
  uint64_t sum = 0;
  for (const Result& r : results) sum += r.sum;
  jsb::report_ops(steps);
  jsb::report_rss_after_free();
  return jsb::report_checksum(sum, true);
}
