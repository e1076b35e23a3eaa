// False sharing caused by the allocator (after the Hoard paper's cache-thrash and
// cache-scratch, Berger et al., ASPLOS 2000).
//
//   --test thrash   active false sharing: every thread repeatedly allocates a small
//                   object, writes each of its bytes `writes` times and frees it. An
//                   allocator that hands neighbouring objects of one cache line to
//                   different threads makes those writes bounce the line between cores.
//   --test scratch  passive false sharing: the main thread allocates one small object
//                   per worker (neighbours, most likely in one cache line) and gives
//                   them away; each worker frees its object first, then loops as above.
//                   An allocator that reuses the freed object for the freeing thread
//                   keeps the workers on one cache line.
//
// The total number of objects is fixed and split over the threads. Full scale: 4,000
// objects of 8 bytes, each byte written 200,000 times (8e8 writes in all).
#include <thread>

#include "common.h"

namespace {

struct Params {
  size_t size;
  size_t writes;
};

// Allocate, hammer, verify, free: `objects` times. Returns the sum of final bytes.
uint64_t hammer(const Params& pr, size_t objects) {
  uint64_t sum = 0;
  for (size_t k = 0; k < objects; ++k) {
    auto* p = static_cast<unsigned char*>(jsb::check_alloc(std::malloc(pr.size), pr.size));
    std::memset(p, static_cast<int>(k & 0xff), pr.size);
    volatile unsigned char* v = p;
    for (size_t w = 0; w < pr.writes; ++w) {
      for (size_t b = 0; b < pr.size; ++b) v[b] = static_cast<unsigned char>(v[b] + 1);
    }
    const auto want = static_cast<unsigned char>((k & 0xff) + pr.writes);
    for (size_t b = 0; b < pr.size; ++b) {
      if (p[b] != want) jsb::fail("cache: byte %zu of object %zu is %u, want %u", b, k, p[b], want);
      sum += p[b];
    }
    std::free(p);
  }
  return sum;
}

}  // namespace

int main(int argc, char** argv) {
  jsb::Cli cli(argc, argv, "cache", {"test", "size", "writes"},
               "--test thrash|scratch [--size BYTES] [--writes N]");
  const std::string test = cli.str("test", "thrash");
  if (test != "thrash" && test != "scratch") {
    std::fprintf(stderr, "cache: unknown --test %s\n", test.c_str());
    return 2;
  }
  const bool scratch = (test == "scratch");
  const std::string name = "cache-" + test;
  cli.announce(name.c_str());
  Params pr;
  pr.size = static_cast<size_t>(cli.num("size", 8, 1));
  pr.writes = static_cast<size_t>(cli.num("writes", 200000));
  // Scaling by s shortens both the object count and the write loop by sqrt(s), so a
  // small scale still allocates enough objects to matter.
  const double root = std::sqrt(cli.scale);
  size_t objects = 0;
  if (cli.scale > 0) {
    objects = std::max<size_t>(static_cast<size_t>(cli.threads),
                               static_cast<size_t>(std::llround(4000 * root)));
    pr.writes = std::max<size_t>(1, static_cast<size_t>(std::llround(pr.writes * root)));
  }
  const size_t nthreads = static_cast<size_t>(cli.threads);

  // Passive false sharing: neighbouring objects from the main thread, one per worker.
  std::vector<void*> given(nthreads, nullptr);
  if (scratch) {
    for (size_t t = 0; t < nthreads; ++t) {
      given[t] = jsb::check_alloc(std::malloc(pr.size), pr.size);
      std::memset(given[t], 0x5a, pr.size);
    }
  }

  std::vector<uint64_t> sums(nthreads * 8, 0);  // one cache line per thread
  std::atomic<size_t> ready{0};
  const double t0 = jsb::now_ms();
  std::vector<std::thread> threads;
  for (size_t t = 0; t < nthreads; ++t) {
    threads.emplace_back([&, t] {
      // Start together, so the first allocations of all threads are simultaneous.
      ready.fetch_add(1);
      while (ready.load() < nthreads) std::this_thread::yield();
      if (scratch) {
        const auto* g = static_cast<const unsigned char*>(given[t]);
        for (size_t b = 0; b < pr.size; ++b)
          if (g[b] != 0x5a) jsb::fail("cache-scratch: object given to thread %zu changed", t);
        std::free(given[t]);
      }
      sums[t * 8] = hammer(pr, jsb::share(objects, nthreads, t));
    });
  }
  for (auto& th : threads) th.join();
  jsb::report_phase("write", jsb::now_ms() - t0);
  uint64_t sum = 0;
  for (size_t t = 0; t < nthreads; ++t) sum += sums[t * 8];
  jsb::report_ops(objects);
  jsb::report_rss_after_free();
  return jsb::report_checksum(sum, true);
}
