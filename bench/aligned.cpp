// Aligned allocation: posix_memalign and aligned_alloc with alignments 16 B .. 64 KiB.
//
// `slots` slots; a step picks one, verifies and frees its block, and allocates a new
// one with a random power-of-two alignment (16 B .. 64 KiB, each equally likely) and a
// random size (log-uniform 1 B .. 16 KiB, rounded up to a multiple of the alignment for
// aligned_alloc), alternating posix_memalign and aligned_alloc. Every pointer is checked
// for its alignment: an allocator that returns a misaligned block fails the workload
// (mimalloc 2.0.9, Debian 12's, does for sizes up to 1 KiB with alignments 256..1024:
// microsoft/mimalloc#700).
//
// Full scale: 20,000,000 steps over 1,000 slots.
#include "common.h"

namespace {

struct Slot {
  void* p = nullptr;
  size_t size = 0;
  uint64_t tag = 0;
};

}  // namespace

int main(int argc, char** argv) {
  jsb::Cli cli(argc, argv, "aligned", {"slots", "max-align"}, "[--slots N] [--max-align BYTES]");
  cli.announce();
  const size_t nslots = static_cast<size_t>(cli.num("slots", 1000, 1));
  const size_t max_align = static_cast<size_t>(cli.num("max-align", 65536, 16));
  if ((max_align & (max_align - 1)) != 0) cli.refuse("max-align", "a power of two");
  const size_t steps = cli.scaled(20e6);
  const int align_bands = __builtin_ctzll(max_align) - 4 + 1;  // 16 .. max_align
  jsb::Rng rng(cli.seed);
  std::vector<Slot> slots(nslots);
  uint64_t sum = 0;
  const double t0 = jsb::now_ms();
  for (size_t k = 0; k < steps; ++k) {
    Slot& s = slots[rng.below(nslots)];
    if (s.p != nullptr) {
      if (!jsb::check(s.p, s.size, s.tag)) jsb::fail("aligned: block of %zu bytes damaged", s.size);
      sum += s.tag;
      std::free(s.p);
    }
    const size_t align = size_t{16} << rng.below(static_cast<uint64_t>(align_bands));
    size_t size = rng.log_uniform(1, 16384);
    void* p = nullptr;
    if (k % 2 == 0) {
      const int rc = ::posix_memalign(&p, align, size);
      if (rc != 0) jsb::fail("aligned: posix_memalign(%zu, %zu) failed: %d", align, size, rc);
    } else {
      size = (size + align - 1) / align * align;
      p = jsb::check_alloc(std::aligned_alloc(align, size), size);
    }
    if (reinterpret_cast<uintptr_t>(p) % align != 0) {
      jsb::fail("aligned: %s(%zu, %zu) returned %p, not %zu-byte aligned",
                k % 2 == 0 ? "posix_memalign" : "aligned_alloc", align, size, p, align);
    }
    s.p = p;
    s.size = size;
    s.tag = jsb::mix64(cli.seed + k);
    jsb::fill(s.p, s.size, s.tag);
  }
  jsb::report_phase("aligned", jsb::now_ms() - t0);
  for (Slot& s : slots) {
    if (s.p == nullptr) continue;
    if (!jsb::check(s.p, s.size, s.tag)) jsb::fail("aligned: block of %zu bytes damaged", s.size);
    sum += s.tag;
    std::free(s.p);
  }
  std::vector<Slot>().swap(slots);
  jsb::report_ops(steps);
  jsb::report_rss_after_free();
  return jsb::report_checksum(sum, true);
}
