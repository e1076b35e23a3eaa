// Fragmentation: long-, medium- and short-lived objects of random sizes, with the size
// range changing from round to round, and the resident set sampled over time.
//
// Each round allocates `round_mb` MiB of objects whose sizes are log-uniform in the
// round's band (the bands cycle 16..256, 256..4K, 4K..64K, 64..1K bytes, so a band's
// free space must be reused by other sizes), writes every byte of them, then frees
// them in random order except:
//   - 1 in 50 objects lives until the end of the run (long-lived);
//   - 1 in 8 objects lives until the end of the next round (medium-lived).
// After each round the workload prints `jsbench sample round=R live_kb=L rss_kb=R`:
// the bytes the program holds and the resident set the allocator needs for them.
// An allocator that cannot reuse the holes left by one band for the next band, or
// never returns them, shows a growing rss/live ratio.
//
// Full scale: 40 rounds of 256 MiB.
#include <algorithm>

#include "common.h"

namespace {

struct Obj {
  void* p;
  size_t size;
  uint64_t tag;
};

const size_t kBands[4][2] = {{16, 256}, {256, 4096}, {4096, 65536}, {64, 1024}};

uint64_t verify_free(const Obj& o) {
  // Every byte was written; check the head, the tail and one byte in the middle.
  if (!jsb::check(o.p, o.size, o.tag)) jsb::fail("frag: object of %zu bytes damaged", o.size);
  const auto* b = static_cast<const unsigned char*>(o.p);
  if (o.size > 16 && b[o.size / 2] != static_cast<unsigned char>(o.tag >> 8))
    jsb::fail("frag: middle of an object of %zu bytes damaged", o.size);
  std::free(o.p);
  return o.tag;
}

}  // namespace

int main(int argc, char** argv) {
  jsb::Cli cli(argc, argv, "frag", {"rounds", "long", "medium"},
               "[--rounds N] [--long ONE_IN_N] [--medium ONE_IN_N]");
  cli.announce();
  const size_t rounds = static_cast<size_t>(cli.num("rounds", 40));
  const uint64_t long_one_in = static_cast<uint64_t>(cli.num("long", 50));
  const uint64_t medium_one_in = static_cast<uint64_t>(cli.num("medium", 8));
  const size_t round_bytes = cli.scaled(256.0 * 1024 * 1024, 0);
  jsb::Rng rng(cli.seed);

  std::vector<Obj> long_lived, medium, fresh, next_medium;
  size_t live = 0;
  uint64_t sum = 0, ops = 0, id = 0;
  double rss_sum = 0, live_sum = 0;
  long rss_max = 0;
  const double t0 = jsb::now_ms();
  for (size_t r = 0; r < rounds; ++r) {
    const size_t lo = kBands[r % 4][0], hi = kBands[r % 4][1];
    fresh.clear();
    for (size_t bytes = 0; bytes < round_bytes;) {
      const size_t size = rng.log_uniform(lo, hi);
      void* p = jsb::check_alloc(std::malloc(size), size);
      const uint64_t tag = jsb::mix64(cli.seed ^ ++id);
      std::memset(p, static_cast<int>((tag >> 8) & 0xff), size);
      jsb::fill(p, size, tag);
      fresh.push_back({p, size, tag});
      bytes += size;
      live += size;
      ++ops;
    }
    // The previous round's medium-lived objects die now, mixed with this round's.
    for (const Obj& o : medium) {
      live -= o.size;
      sum += verify_free(o);
    }
    medium.clear();
    for (size_t i = fresh.size(); i > 1; --i) std::swap(fresh[i - 1], fresh[rng.below(i)]);
    next_medium.clear();
    for (const Obj& o : fresh) {
      if (rng.chance(1, long_one_in)) {
        long_lived.push_back(o);
      } else if (rng.chance(1, medium_one_in)) {
        next_medium.push_back(o);
      } else {
        live -= o.size;
        sum += verify_free(o);
      }
    }
    medium.swap(next_medium);
    const long rss = jsb::rss_kb();
    std::printf("jsbench sample round=%zu live_kb=%zu rss_kb=%ld\n", r, live / 1024, rss);
    rss_sum += static_cast<double>(rss);
    live_sum += static_cast<double>(live) / 1024;
    rss_max = std::max(rss_max, rss);
  }
  jsb::report_phase("rounds", jsb::now_ms() - t0);
  if (rounds > 0) {
    std::printf("jsbench rss_mean_kb=%.0f live_mean_kb=%.0f rss_max_kb=%ld\n", rss_sum / rounds,
                live_sum / rounds, rss_max);
  }
  for (const Obj& o : medium) sum += verify_free(o);
  for (const Obj& o : long_lived) sum += verify_free(o);
  std::vector<Obj>().swap(medium);
  std::vector<Obj>().swap(long_lived);
  std::vector<Obj>().swap(fresh);
  std::vector<Obj>().swap(next_medium);
  jsb::report_ops(ops);
  jsb::report_rss_after_free();
  return jsb::report_checksum(sum, true);
}
