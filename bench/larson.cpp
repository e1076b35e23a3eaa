// Larson-style server simulation (after Larson & Krishnan, "Memory allocation for
// long-running server applications", 1998, and mimalloc-bench's larson-sized).
//
// A shared array of `slots` objects stands for a server's live data. Worker threads
// repeatedly pick a random slot, allocate a new object of random size in [min, max],
// swap it into the slot and free the object they took out, which was most likely
// allocated by another thread: objects die in other threads. The work is done in
// `epochs`: at the end of each epoch every worker exits and a fresh set of threads
// takes over the array, as in the original benchmark, so objects also outlive the
// thread that allocated them.
//
// The total work (replacements) is fixed and split over the threads, so the run time
// shows how the allocator behaves as threads are added on a 2-core machine.
// Full scale: 40,000,000 replacements over 16,384 slots, sizes 8..1000.
#include <thread>

#include "common.h"

namespace {

struct Shared {
  std::atomic<void*>* slots;
  size_t nslots;
  size_t min_size, max_size;
  uint64_t seed;
};

struct Sums {
  alignas(64) uint64_t allocated = 0;  // sum of values of allocated blocks
  uint64_t freed = 0;                  // sum of values of freed blocks (verified)
};

void worker(const Shared& sh, size_t epoch, size_t index, size_t ops, Sums& out) {
  jsb::Rng rng(sh.seed, (epoch << 20) | index);
  uint64_t allocated = 0, freed = 0;
  const uint64_t id_base = (epoch << 26) ^ (index << 20);
  for (size_t k = 0; k < ops; ++k) {
    const size_t slot = rng.below(sh.nslots);
    const size_t size = rng.range(sh.min_size, sh.max_size);
    void* p = jsb::check_alloc(std::malloc(size), size);
    jsb::fill_block(p, size, id_base + k);
    allocated += jsb::block_value(jsb::block_header(size, id_base + k));
    void* old = sh.slots[slot].exchange(p, std::memory_order_acq_rel);
    if (old != nullptr) {
      freed += jsb::check_block(old, "larson");
      std::free(old);
    }
  }
  out.allocated += allocated;
  out.freed += freed;
}

}  // namespace

int main(int argc, char** argv) {
  jsb::Cli cli(argc, argv, "larson", {"slots", "min", "max", "epochs"},
               "[--slots N] [--min BYTES] [--max BYTES] [--epochs N]");
  cli.announce();
  Shared sh;
  sh.nslots = static_cast<size_t>(cli.num("slots", 16384));
  sh.min_size = static_cast<size_t>(cli.num("min", 8));
  sh.max_size = static_cast<size_t>(cli.num("max", 1000));
  sh.seed = cli.seed;
  if (sh.nslots == 0 || sh.min_size < 8 || sh.max_size < sh.min_size) {
    std::fprintf(stderr, "larson: need --slots >= 1 and 8 <= --min <= --max\n");
    return 2;
  }
  const size_t epochs = static_cast<size_t>(cli.num("epochs", 4));
  const size_t total_ops = cli.scaled(40e6);
  const size_t nthreads = static_cast<size_t>(cli.threads);

  // The main thread fills the array, so the first frees of every worker are remote.
  sh.slots = new std::atomic<void*>[sh.nslots];
  uint64_t allocated = 0, freed = 0;
  jsb::Rng rng(cli.seed, ~0ULL);
  for (size_t i = 0; i < sh.nslots; ++i) {
    const size_t size = rng.range(sh.min_size, sh.max_size);
    void* p = jsb::check_alloc(std::malloc(size), size);
    const uint64_t id = (uint64_t{0xfff} << 20) + i;
    jsb::fill_block(p, size, id);
    allocated += jsb::block_value(jsb::block_header(size, id));
    sh.slots[i].store(p, std::memory_order_relaxed);
  }

  std::vector<Sums> sums(nthreads);
  const double t0 = jsb::now_ms();
  for (size_t e = 0; e < epochs; ++e) {
    const size_t epoch_ops = jsb::share(total_ops, epochs, e);
    std::vector<std::thread> threads;
    threads.reserve(nthreads);
    for (size_t t = 0; t < nthreads; ++t) {
      threads.emplace_back(worker, std::cref(sh), e, t, jsb::share(epoch_ops, nthreads, t),
                           std::ref(sums[t]));
    }
    for (auto& th : threads) th.join();
  }
  jsb::report_phase("replace", jsb::now_ms() - t0);
  for (const Sums& s : sums) {
    allocated += s.allocated;
    freed += s.freed;
  }
  for (size_t i = 0; i < sh.nslots; ++i) {
    void* p = sh.slots[i].load(std::memory_order_relaxed);
    freed += jsb::check_block(p, "larson");
    std::free(p);
  }
  delete[] sh.slots;
  jsb::report_ops(total_ops);
  jsb::report_rss_after_free();
  if (freed != allocated) jsb::fail("larson: freed blocks do not add up to allocated blocks");
  return jsb::report_checksum(freed, true);
}
