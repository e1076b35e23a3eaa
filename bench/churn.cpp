// Thread churn: short-lived threads, in generations of `threads` at a time (as in
// mimalloc's test-stress and the glibc-thread benchmark of mimalloc-bench).
//
// Each thread allocates `objects` blocks of random size (log-uniform 16..4096), frees
// three quarters of them in random order, and leaves the rest in a hand-off slot for
// the thread of the next generation, which frees them after their allocating thread
// has exited. What is measured is the allocator's cost of thread start-up, of a thread
// exit (its cache returned) and of freeing memory whose owner is gone.
//
// Full scale: 20,000 thread lifetimes of 1,000 blocks each.
#include <thread>

#include "common.h"

namespace {

struct Handoff {
  std::vector<void*> blocks;  // survivors left by the previous generation
};

struct alignas(64) Result {
  uint64_t allocated = 0, freed = 0;
};

void life(uint64_t seed, size_t gen, size_t slot, size_t objects, Handoff& handoff,
          Result& res) {
  jsb::Rng rng(seed, (gen << 16) | slot);
  uint64_t allocated = 0, freed = 0;
  // Free what the previous generation left behind (its threads are gone).
  for (void* p : handoff.blocks) {
    freed += jsb::check_block(p, "churn");
    std::free(p);
  }
  handoff.blocks.clear();
  std::vector<void*> mine(objects);
  for (size_t i = 0; i < objects; ++i) {
    const size_t size = rng.log_uniform(16, 4096);
    void* p = jsb::check_alloc(std::malloc(size), size);
    const uint64_t id = (gen << 20) + (slot << 12) + i;
    jsb::fill_block(p, size, id);
    allocated += jsb::block_value(jsb::block_header(size, id));
    mine[i] = p;
  }
  // Shuffle, free three quarters, hand the last quarter on.
  for (size_t i = objects; i > 1; --i) std::swap(mine[i - 1], mine[rng.below(i)]);
  const size_t keep = objects / 4;
  for (size_t i = keep; i < objects; ++i) {
    freed += jsb::check_block(mine[i], "churn");
    std::free(mine[i]);
  }
  mine.resize(keep);
  handoff.blocks.swap(mine);
  res.allocated += allocated;
  res.freed += freed;
}

}  // namespace

int main(int argc, char** argv) {
  jsb::Cli cli(argc, argv, "thread-churn", {"objects"}, "[--objects N]");
  cli.announce();
  const size_t objects = static_cast<size_t>(cli.num("objects", 1000));
  const size_t nthreads = static_cast<size_t>(cli.threads);
  const size_t lifetimes = cli.scaled(20000, nthreads);
  const size_t generations = cli.scale == 0 ? 0 : (lifetimes + nthreads - 1) / nthreads;

  std::vector<Handoff> handoffs(nthreads);
  std::vector<Result> results(nthreads);
  const double t0 = jsb::now_ms();
  std::vector<std::thread> threads(nthreads);
  for (size_t g = 0; g < generations; ++g) {
    // Each generation hands its survivors to a different slot of the next one.
    for (size_t t = 0; t < nthreads; ++t) {
      threads[t] = std::thread(life, cli.seed, g, t, objects,
                               std::ref(handoffs[(t + g) % nthreads]), std::ref(results[t]));
    }
    for (auto& th : threads) th.join();
  }
  jsb::report_phase("generations", jsb::now_ms() - t0);
  uint64_t allocated = 0, freed = 0;
  for (const Result& r : results) {
    allocated += r.allocated;
    freed += r.freed;
  }
  for (Handoff& h : handoffs) {
    for (void* p : h.blocks) {
      freed += jsb::check_block(p, "churn");
      std::free(p);
    }
    std::vector<void*>().swap(h.blocks);
  }
  jsb::report_ops(generations * nthreads * objects);
  jsb::report_rss_after_free();
  if (allocated != freed) jsb::fail("churn: freed blocks do not add up to allocated blocks");
  return jsb::report_checksum(freed, true);
}
