// Soak: a steady live set of mixed sizes and mixed lifetimes, replaced round after round,
// with the resident set sampled after every round (issue 15's "bounded fragmentation
// soak", as a benchmark with an RSS-over-time chart; tests/stress/fragmentation_soak_test
// asserts the bounds on jsmalloc alone).
//
// The live set is held at `live_mb` MiB. Every round frees a random half of the
// short-lived objects and a sixteenth of the long-lived ones (1 in 32 new objects is
// long-lived, so in the steady state about a fifth of the live bytes are long-lived and
// scattered over spans whose neighbours come and go), then allocates new objects of
// log-uniform sizes from 16 B to 64 KiB until the live bytes are back at the target.
// After each round the workload prints `jsbench sample round=R live_kb=L rss_kb=R`. Unlike
// `frag`, the size mix never changes: what grows here is fragmentation that the allocator
// cannot undo in the steady state, round after round (creep).
//
// Full scale: 60 rounds around 512 MiB.
#include <algorithm>

#include "common.h"

namespace {

struct Obj {
  void* p;
  size_t size;
  uint64_t tag;
  bool long_lived;
};

uint64_t verify_free(const Obj& o) {
  if (!jsb::check(o.p, o.size, o.tag)) jsb::fail("soak: object of %zu bytes damaged", o.size);
  std::free(o.p);
  return o.tag;
}

}  // namespace

int main(int argc, char** argv) {
  jsb::Cli cli(argc, argv, "soak", {"rounds"}, "[--rounds N]");
  cli.announce();
  const size_t rounds = static_cast<size_t>(cli.num("rounds", 60));
  const size_t live_target = cli.scaled(512.0 * 1024 * 1024, 1024 * 1024);
  jsb::Rng rng(cli.seed);

  std::vector<Obj> live;
  size_t live_bytes = 0;
  uint64_t sum = 0, ops = 0, id = 0;
  double rss_sum = 0, live_sum = 0;
  long rss_max = 0, rss_first = 0;
  const double t0 = jsb::now_ms();
  for (size_t r = 0; r < rounds; ++r) {
    size_t kept = 0;
    for (const Obj& o : live) {
      const bool dies = o.long_lived ? rng.chance(1, 16) : rng.chance(1, 2);
      if (!dies) {
        live[kept++] = o;
        continue;
      }
      live_bytes -= o.size;
      sum += verify_free(o);
      ++ops;
    }
    live.resize(kept);
    while (live_bytes < live_target) {
      const size_t size = rng.log_uniform(16, 64 * 1024);
      void* p = jsb::check_alloc(std::malloc(size), size);
      const uint64_t tag = jsb::mix64(cli.seed ^ ++id);
      // Every byte written, so that RSS counts the live set whole.
      std::memset(p, static_cast<int>(tag & 0xff), size);
      jsb::fill(p, size, tag);
      live.push_back({p, size, tag, rng.chance(1, 32)});
      live_bytes += size;
      ++ops;
    }
    const long rss = jsb::rss_kb();
    std::printf("jsbench sample round=%zu live_kb=%zu rss_kb=%ld\n", r, live_bytes / 1024, rss);
    if (r == 0) rss_first = rss;
    rss_sum += static_cast<double>(rss);
    live_sum += static_cast<double>(live_bytes) / 1024;
    rss_max = std::max(rss_max, rss);
  }
  jsb::report_phase("rounds", jsb::now_ms() - t0);
  if (rounds > 0) {
    std::printf("jsbench rss_mean_kb=%.0f live_mean_kb=%.0f rss_max_kb=%ld rss_first_kb=%ld\n",
                rss_sum / static_cast<double>(rounds), live_sum / static_cast<double>(rounds),
                rss_max, rss_first);
  }
  for (const Obj& o : live) sum += verify_free(o);
  std::vector<Obj>().swap(live);
  jsb::report_ops(ops);
  jsb::report_rss_after_free();
  return jsb::report_checksum(sum, true);
}
