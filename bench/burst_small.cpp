// Burst of small objects, then light activity: issue 15's own case. A program allocates
// many small blocks (random sizes 16 B .. 4 KiB, every byte written), frees them all in
// allocation order, then stays lightly busy for `--seconds` S: every millisecond one
// malloc of 100 B, 70 KB and 2 MiB, each touched and freed. What it measures is how much
// of the burst's memory the allocator gives back to the OS while the program goes on
// running, and how soon; then what malloc_trim(0) gives back on top.
//
// Output, besides the usual lines (all RSS from /proc/self/statm, in KiB):
//   jsbench rss_peak_kb=P live_kb=L          with every burst block still live; L is
//                                            the bytes the program asked for
//   jsbench rss_after_free_kb=A              right after the last free
//   jsbench rss_t1_kb=.. t1_ms=.. rss_t1_pct=..   at S/5, 2S/5 and S after the frees
//   (t2, t3 likewise; S = 5 s gives 1, 2 and 5 s, the points of the issue)
//   jsbench rss_trim_kb=T rss_trim_pct=..    after malloc_trim(0); n/a without it
//   jsbench sample t_ms=.. rss_kb=..         every 100 ms of the quiet phase (the chart)
// Percentages are of rss_peak_kb.
//
// Full scale: 512 MiB of small blocks.
#include <dlfcn.h>
#include <time.h>

#include "common.h"

namespace {

struct Block {
  unsigned char* p;
  size_t size;
  uint64_t tag;
};

struct Sample {
  long t_ms;
  long rss_kb;
};

double pct(long kb, long peak_kb) {
  return peak_kb > 0 ? 100.0 * static_cast<double>(kb) / static_cast<double>(peak_kb) : 0.0;
}

// Sleeps until `deadline_ms` on the steady clock (the clock of jsb::now_ms).
void sleep_until_ms(double deadline_ms) {
  const double wait = deadline_ms - jsb::now_ms();
  if (wait <= 0) return;
  timespec ts;
  ts.tv_sec = static_cast<time_t>(wait / 1000);
  ts.tv_nsec = static_cast<long>((wait - static_cast<double>(ts.tv_sec) * 1000) * 1e6);
  nanosleep(&ts, nullptr);
}

// One step of the light activity: each block is written on every page and checked
// before it is freed, so a lazily committed or released page is really faulted in.
void touch_and_free(size_t size, uint64_t tag) {
  auto* p = static_cast<unsigned char*>(jsb::check_alloc(std::malloc(size), size));
  jsb::fill_pages(p, size, tag);
  jsb::check_pages(p, size, tag, "burst-small: light activity");
  std::free(p);
}

}  // namespace

int main(int argc, char** argv) {
  jsb::Cli cli(argc, argv, "burst-small", {"seconds"}, "[--seconds S]");
  cli.announce();
  const double seconds = cli.real("seconds", 5, 0, 3600);
  const size_t burst_bytes = cli.scaled(512.0 * 1024 * 1024, 0);
  jsb::Rng rng(cli.seed);
  uint64_t sum = 0;

  const double t0 = jsb::now_ms();
  std::vector<Block> blocks;
  blocks.reserve(burst_bytes / 2000 + 16);
  for (size_t bytes = 0; bytes < burst_bytes;) {
    const size_t size = rng.range(16, 4096);
    auto* p = static_cast<unsigned char*>(jsb::check_alloc(std::malloc(size), size));
    const uint64_t tag = jsb::mix64(cli.seed ^ blocks.size());
    std::memset(p, static_cast<int>(tag & 0xff), size);
    jsb::fill(p, size, tag);
    blocks.push_back({p, size, tag});
    bytes += size;
  }
  const long peak_kb = jsb::rss_kb();
  jsb::report_phase("alloc", jsb::now_ms() - t0);
  const double t1 = jsb::now_ms();
  for (const Block& b : blocks) {
    if (!jsb::check(b.p, b.size, b.tag) ||
        (b.size > 16 && b.p[b.size / 2] != static_cast<unsigned char>(b.tag & 0xff)))
      jsb::fail("burst-small: block of %zu bytes damaged", b.size);
    sum += b.tag;
    std::free(b.p);
  }
  const double freed_at = jsb::now_ms();
  const long after_free_kb = jsb::rss_kb();
  jsb::report_phase("free", freed_at - t1);
  const size_t burst_count = blocks.size();
  // The block array is the program's own memory, not the allocator's: give it back
  // before the quiet phase so that it does not blur what the allocator keeps.
  std::vector<Block>().swap(blocks);

  // Light activity for S seconds, one step per millisecond (a late step is not made
  // up). RSS is read at the three report points and every 100 ms for the chart.
  const double quiet_ms = cli.scale == 0 ? 0 : seconds * 1000.0;
  const double points_ms[3] = {quiet_ms / 5, 2 * quiet_ms / 5, quiet_ms};
  long points_kb[3] = {-1, -1, -1};
  std::vector<Sample> samples;
  samples.reserve(static_cast<size_t>(quiet_ms / 100) + 4);
  samples.push_back({0, after_free_kb});
  uint64_t steps = 0;
  int next_point = 0;
  long next_sample_ms = 100;
  for (double tick = freed_at;;) {
    const double elapsed = jsb::now_ms() - freed_at;
    while (next_point < 3 && elapsed >= points_ms[next_point]) {
      points_kb[next_point++] = jsb::rss_kb();
    }
    if (elapsed >= static_cast<double>(next_sample_ms)) {
      samples.push_back({static_cast<long>(elapsed), jsb::rss_kb()});
      while (static_cast<double>(next_sample_ms) <= elapsed) next_sample_ms += 100;
    }
    if (elapsed >= quiet_ms) break;
    touch_and_free(100, steps);
    touch_and_free(70000, steps + 1);
    touch_and_free(2 * 1024 * 1024, steps + 2);
    ++steps;
    tick += 1.0;
    const double now = jsb::now_ms();
    if (tick < now) tick = now;
    sleep_until_ms(tick);
  }

  // malloc_trim is glibc's; a preloaded allocator may define its own, forward it or
  // leave glibc's (which then trims an arena the program does not use). Resolve it at
  // run time, so that the workload runs where it does not exist at all.
  using TrimFn = int (*)(size_t);
  auto trim = reinterpret_cast<TrimFn>(::dlsym(RTLD_DEFAULT, "malloc_trim"));
  long trim_kb = -1;
  const char* trim_lib = "none";
  if (trim != nullptr) {
    Dl_info info;
    if (::dladdr(reinterpret_cast<void*>(trim), &info) != 0 && info.dli_fname != nullptr)
      trim_lib = info.dli_fname;
    trim(0);
    trim_kb = jsb::rss_kb();
  }

  std::printf("jsbench rss_peak_kb=%ld live_kb=%zu\n", peak_kb, burst_bytes / 1024);
  jsb::report_ops(burst_count + 3 * steps);
  std::printf("jsbench rss_after_free_kb=%ld rss_after_free_pct=%.1f\n", after_free_kb,
              pct(after_free_kb, peak_kb));
  for (int i = 0; i < 3; ++i) {
    std::printf("jsbench rss_t%d_kb=%ld t%d_ms=%.0f rss_t%d_pct=%.1f\n", i + 1, points_kb[i], i + 1,
                points_ms[i], i + 1, pct(points_kb[i], peak_kb));
  }
  if (trim_kb >= 0) {
    std::printf("jsbench rss_trim_kb=%ld rss_trim_pct=%.1f trim_lib=%s\n", trim_kb,
                pct(trim_kb, peak_kb), trim_lib);
  } else {
    std::printf("jsbench rss_trim_kb=n/a rss_trim_pct=n/a trim_lib=none\n");
  }
  for (const Sample& s : samples) {
    std::printf("jsbench sample t_ms=%ld rss_kb=%ld\n", s.t_ms, s.rss_kb);
  }
  // The number of light steps depends on the allocator's speed: not in the checksum.
  return jsb::report_checksum(sum, true);
}
