// Burst, then quiet: a burst of large blocks (64 KiB .. 4 MiB, every page written), all
// freed, then `--quiet-ms` of small-object work (rounds of 20,000 blocks of 16 .. 512 B,
// written and freed): a server's memory after one big request, while it goes on serving
// small ones. What this measures is the resident set at the end (rss_after_free):
// whether the burst's pages went back to the OS while the program kept running. Only
// the burst is timed; the quiet phase lasts a fixed time.
//
// Full scale: a 1 GiB burst.
#include "common.h"

namespace {

constexpr size_t kRound = 20000;

struct Block {
  unsigned char* p;
  size_t size;
  uint64_t tag;
};

}  // namespace

int main(int argc, char** argv) {
  jsb::Cli cli(argc, argv, "burst", {"quiet-ms"}, "[--quiet-ms MS]");
  cli.announce();
  const double quiet_ms = static_cast<double>(cli.num("quiet-ms", 1500));
  const size_t burst_bytes = cli.scaled(1024.0 * 1024 * 1024, 0);
  jsb::Rng rng(cli.seed);
  uint64_t sum = 0;

  const double t0 = jsb::now_ms();
  std::vector<Block> blocks;
  for (size_t bytes = 0; bytes < burst_bytes;) {
    const size_t size = rng.log_uniform(64 * 1024, 4 * 1024 * 1024);
    auto* p = static_cast<unsigned char*>(jsb::check_alloc(std::malloc(size), size));
    blocks.push_back({p, size, jsb::mix64(cli.seed ^ blocks.size())});
    jsb::fill_pages(p, size, blocks.back().tag);
    bytes += size;
  }
  for (const Block& b : blocks) {
    jsb::check_pages(b.p, b.size, b.tag, "burst");
    sum += b.tag;
    std::free(b.p);
  }
  jsb::report_phase("burst", jsb::now_ms() - t0);

  // Quiet: small objects only, for a fixed time (not reported as a phase).
  static Block small[kRound];
  const double quiet_end = jsb::now_ms() + (cli.scale == 0 ? 0 : quiet_ms);
  uint64_t rounds = 0;
  while (jsb::now_ms() < quiet_end) {
    for (Block& b : small) {
      b.size = rng.log_uniform(16, 512);
      b.p = static_cast<unsigned char*>(jsb::check_alloc(std::malloc(b.size), b.size));
      b.tag = rng.next();
      jsb::fill(b.p, b.size, b.tag);
    }
    for (const Block& b : small) {
      if (!jsb::check(b.p, b.size, b.tag)) jsb::fail("burst: small block damaged");
      std::free(b.p);
    }
    ++rounds;
  }
  // The number of rounds depends on the allocator's speed: it is not in the checksum,
  // which must be the same under every allocator.
  jsb::report_ops(blocks.size() + rounds * kRound);
  jsb::report_rss_after_free();
  return jsb::report_checksum(sum, true);
}
