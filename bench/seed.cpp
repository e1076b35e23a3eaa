// The seed's benchmark table, test by test (seeds/002): `items` blocks of one size (or
// of a small mix of sizes) are allocated, `iters` times over, and freed.
//
//   --test free        sizes 1, 2, 4 ... 8192: allocate all items, then free all
//   --test immediate   sizes 8 ... 8192: allocate and free each item at once
//   --test free-desc   sizes 8192 ... 8: allocate all, then free all
//   --test scatter     item i has size triple[i % 3], triples [8,16,32] ... [1024,2048,4096]
//   --test sparse      item i has size 8 << (i % 8) (8 ... 1024), freed in order
//   --test sparse-rev  the same, freed in reverse order
//
// Full scale (--scale 1) is the seed's: 800,000 items x 10 iterations per size. Every
// block gets a tag in its first and last bytes, checked just before it is freed. Each
// size is one phase (its time is printed); at the end, with every block freed, the
// resident set is printed: the seed's "committed physical pages post".
#include "common.h"

namespace {

struct Plan {
  std::string label;
  std::vector<size_t> sizes;  // item i has size sizes[i % sizes.size()]
};

uint64_t tag_of(size_t i, size_t it, uint64_t seed) {
  return (seed + i * 0x9e3779b97f4a7c15ULL) ^ (it << 56);
}

// N (the length of the size cycle) is a template parameter so `i % N` is cheap.
template <size_t N>
uint64_t alloc_all_free_all(void** ptrs, size_t items, size_t iters, const size_t* sizes,
                            bool reverse, uint64_t seed) {
  uint64_t sum = 0;
  for (size_t it = 0; it < iters; ++it) {
    for (size_t i = 0; i < items; ++i) {
      const size_t size = sizes[i % N];
      void* p = jsb::check_alloc(std::malloc(size), size);
      jsb::fill(p, size, tag_of(i, it, seed));
      ptrs[i] = p;
    }
    jsb::escape(ptrs);
    for (size_t k = 0; k < items; ++k) {
      const size_t i = reverse ? items - 1 - k : k;
      const size_t size = sizes[i % N];
      const uint64_t tag = tag_of(i, it, seed);
      if (!jsb::check(ptrs[i], size, tag))
        jsb::fail("seed: block %zu of %zu bytes was overwritten", i, size);
      sum += tag;
      std::free(ptrs[i]);
    }
  }
  return sum;
}

template <size_t N>
uint64_t alloc_free_each(size_t items, size_t iters, const size_t* sizes, uint64_t seed) {
  uint64_t sum = 0;
  for (size_t it = 0; it < iters; ++it) {
    for (size_t i = 0; i < items; ++i) {
      const size_t size = sizes[i % N];
      void* p = jsb::check_alloc(std::malloc(size), size);
      const uint64_t tag = tag_of(i, it, seed);
      jsb::fill(p, size, tag);
      jsb::escape(p);
      if (!jsb::check(p, size, tag)) jsb::fail("seed: block of %zu bytes was overwritten", size);
      sum += tag;
      std::free(p);
    }
  }
  return sum;
}

}  // namespace

int main(int argc, char** argv) {
  jsb::Cli cli(argc, argv, "seed", {"test", "iters"},
               "--test free|immediate|free-desc|scatter|sparse|sparse-rev [--iters N]");
  const std::string test = cli.str("test", "free");
  const size_t items = cli.scaled(800000);
  const size_t iters = static_cast<size_t>(cli.num("iters", 10));

  std::vector<Plan> plans;
  bool immediate = false, reverse = false;
  if (test == "free" || test == "immediate") {
    immediate = (test == "immediate");
    for (size_t s = immediate ? 8 : 1; s <= 8192; s *= 2) plans.push_back({std::to_string(s), {s}});
  } else if (test == "free-desc") {
    for (size_t s = 8192; s >= 8; s /= 2) plans.push_back({std::to_string(s), {s}});
  } else if (test == "scatter") {
    for (size_t s = 8; s <= 1024; s *= 2) {
      plans.push_back({std::to_string(s) + "/" + std::to_string(2 * s) + "/" + std::to_string(4 * s),
                       {s, 2 * s, 4 * s}});
    }
  } else if (test == "sparse" || test == "sparse-rev") {
    reverse = (test == "sparse-rev");
    plans.push_back({"8-1024", {8, 16, 32, 64, 128, 256, 512, 1024}});
  } else {
    std::fprintf(stderr, "seed: unknown --test %s\n", test.c_str());
    return 2;
  }
  const std::string name = "seed-" + test;
  cli.announce(name.c_str());

  const size_t array_bytes = (items ? items : 1) * sizeof(void*);
  void** ptrs = static_cast<void**>(jsb::check_alloc(std::malloc(array_bytes), array_bytes));
  uint64_t sum = 0, ops = 0;
  for (const Plan& plan : plans) {
    const size_t* sizes = plan.sizes.data();
    const double t0 = jsb::now_ms();
    switch (plan.sizes.size()) {
      case 1:
        sum += immediate ? alloc_free_each<1>(items, iters, sizes, cli.seed)
                         : alloc_all_free_all<1>(ptrs, items, iters, sizes, reverse, cli.seed);
        break;
      case 3:
        sum += alloc_all_free_all<3>(ptrs, items, iters, sizes, reverse, cli.seed);
        break;
      default:
        sum += alloc_all_free_all<8>(ptrs, items, iters, sizes, reverse, cli.seed);
        break;
    }
    jsb::report_phase(plan.label.c_str(), jsb::now_ms() - t0);
    ops += items * iters;
  }
  std::free(ptrs);
  jsb::report_ops(ops);
  jsb::report_rss_after_free();
  return jsb::report_checksum(sum, true);
}
