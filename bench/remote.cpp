// Remote frees with pauses (issue 17; the shape of rpmalloc's own benchmark): in every
// round each of `threads` threads allocates `objects` blocks of random size
// (log-uniform 16 B .. 16 KiB) and writes them; after a barrier each thread frees seven
// eighths of its neighbour's blocks (another thread's: the allocator's remote-free
// path) and keeps the rest alive for one more round, freeing them itself; then all
// pause (--pause-us) before the next round, as a server between bursts does, so that
// caches sit idle and what an allocator holds in them shows in the peak RSS.
//
// Full scale: 4,000,000 blocks: 4,000 / threads rounds of 1,000 blocks per thread.
#include <algorithm>
#include <barrier>
#include <chrono>
#include <thread>

#include "common.h"

namespace {

struct alignas(64) Slot {
  std::vector<void*> fresh;  // this round's blocks, freed mostly by the neighbour
  std::vector<void*> kept;   // last round's survivors, freed by their owner
  uint64_t allocated = 0, freed = 0;
};

uint64_t FreeBlock(void* p) {
  const uint64_t v = jsb::check_block(p, "remote");
  std::free(p);
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  jsb::Cli cli(argc, argv, "remote", {"objects", "pause-us"}, "[--objects N] [--pause-us U]");
  cli.announce();
  const size_t objects = static_cast<size_t>(cli.num("objects", 1000));
  const long pause_us = cli.num("pause-us", 200);
  const size_t nthreads = static_cast<size_t>(cli.threads);
  // The same work at every thread count: rounds shrink as threads are added.
  const size_t rounds = cli.scale == 0 ? 0 : std::max<size_t>(1, cli.scaled(4000) / nthreads);
  std::vector<Slot> slots(nthreads);
  std::barrier sync(static_cast<std::ptrdiff_t>(nthreads));

  auto worker = [&](size_t t) {
    Slot& mine = slots[t];
    Slot& next = slots[(t + 1) % nthreads];
    jsb::Rng rng(cli.seed, t);
    for (size_t r = 0; r < rounds; ++r) {
      for (void* p : mine.kept) mine.freed += FreeBlock(p);
      mine.kept.clear();
      mine.fresh.resize(objects);
      for (size_t i = 0; i < objects; ++i) {
        const size_t size = rng.log_uniform(16, 16384);
        void* p = jsb::check_alloc(std::malloc(size), size);
        const uint64_t id = (uint64_t{r} << 24) + (uint64_t{t} << 12) + i;
        jsb::fill_block(p, size, id);
        mine.allocated += jsb::block_value(jsb::block_header(size, id));
        mine.fresh[i] = p;
      }
      sync.arrive_and_wait();
      // The neighbour's blocks: every eighth survives the round, in its owner's list.
      for (size_t i = 0; i < next.fresh.size(); ++i) {
        if (i % 8 == 7) continue;
        mine.freed += FreeBlock(next.fresh[i]);
        next.fresh[i] = nullptr;
      }
      sync.arrive_and_wait();
      for (void* p : mine.fresh)
        if (p != nullptr) mine.kept.push_back(p);
      mine.fresh.clear();
      if (pause_us > 0) std::this_thread::sleep_for(std::chrono::microseconds(pause_us));
    }
    for (void* p : mine.kept) mine.freed += FreeBlock(p);
    std::vector<void*>().swap(mine.kept);
    std::vector<void*>().swap(mine.fresh);
  };

  const double t0 = jsb::now_ms();
  std::vector<std::thread> threads;
  for (size_t t = 0; t < nthreads; ++t) threads.emplace_back(worker, t);
  for (auto& th : threads) th.join();
  jsb::report_phase("rounds", jsb::now_ms() - t0);
  uint64_t allocated = 0, freed = 0;
  for (const Slot& s : slots) {
    allocated += s.allocated;
    freed += s.freed;
  }
  jsb::report_ops(rounds * nthreads * objects);
  jsb::report_rss_after_free();
  if (allocated != freed) jsb::fail("remote: freed blocks do not add up to allocated blocks");
  return jsb::report_checksum(freed, true);
}
