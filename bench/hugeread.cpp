// A large heap of small objects read in random order: what hugepages are worth. The
// workload allocates N objects of 64 bytes one malloc at a time, links them into one
// random cycle (each object holds the pointer to the next), then follows that chain for
// `--reads` M steps, each a dependent load that misses the caches and, on 4 KiB pages,
// the TLB. The read time is the latency of those loads, so it is as good as the share
// of the heap the allocator got onto transparent hugepages (THP): with the system's
// THP mode `madvise`, only memory the allocator asked for with MADV_HUGEPAGE.
//
// Output, besides the usual lines:
//   jsbench rss_peak_kb=R heap_kb=K anon_huge_kb=H rss_huge_pct=P
//                    after building, with every object live: the resident set, the
//                    bytes of objects, AnonHugePages of /proc/self/smaps_rollup (n/a when
//                    the kernel has no smaps_rollup) and H as a share of R
//   jsbench ns_per_read=X reads=M
//   jsbench rss_after_free_kb=A
//
// Full scale: 1 GiB of objects (16 M) and 8 M reads.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common.h"

namespace {

constexpr size_t kObjectSize = 64;

struct Object {
  Object* next;
  uint64_t id;
  uint64_t pad[6];
};
static_assert(sizeof(Object) == kObjectSize);

// AnonHugePages of this process in KiB, or -1 when /proc/self/smaps_rollup cannot be
// read (kernels before 4.14). Plain system calls: nothing is allocated while measuring.
long anon_huge_kb() {
  const int fd = ::open("/proc/self/smaps_rollup", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  char buf[4096];
  size_t n = 0;
  for (;;) {
    const ssize_t r = ::read(fd, buf + n, sizeof(buf) - 1 - n);
    if (r <= 0) break;
    n += static_cast<size_t>(r);
    if (n == sizeof(buf) - 1) break;
  }
  ::close(fd);
  buf[n] = '\0';
  const char* key = "AnonHugePages:";
  const char* at = std::strstr(buf, key);
  if (at == nullptr) return -1;
  return std::strtol(at + std::strlen(key), nullptr, 10);
}

}  // namespace

int main(int argc, char** argv) {
  jsb::Cli cli(argc, argv, "hugeread", {"reads"}, "[--reads M]");
  cli.announce();
  const size_t count = cli.scaled(1024.0 * 1024 * 1024 / kObjectSize, 0);
  const long reads_opt = cli.num("reads", -1);
  const size_t reads =
      reads_opt >= 0 ? static_cast<size_t>(reads_opt) : cli.scaled(8.0 * 1024 * 1024, 0);
  jsb::Rng rng(cli.seed);

  const double t0 = jsb::now_ms();
  // The order array is the program's own memory, not the heap under test: it is mapped
  // directly (no MADV_HUGEPAGE, so on 4 KiB pages in THP mode madvise) and unmapped
  // before the heap is measured, whatever the allocator does with a freed large block.
  const size_t order_bytes = count * sizeof(Object*);
  Object** objects = nullptr;
  if (count != 0) {
    void* m =
        ::mmap(nullptr, order_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) jsb::fail("hugeread: cannot map %zu bytes for the order", order_bytes);
    objects = static_cast<Object**>(m);
  }
  for (size_t i = 0; i < count; ++i) {
    auto* o = static_cast<Object*>(jsb::check_alloc(std::malloc(kObjectSize), kObjectSize));
    o->next = nullptr;
    o->id = i;
    for (uint64_t& w : o->pad) w = jsb::mix64(i);
    objects[i] = o;
  }
  // A random cyclic order (Fisher-Yates over the array, then each links to the next):
  // one cycle through every object, so the chase visits the whole heap.
  for (size_t i = count; i > 1; --i) std::swap(objects[i - 1], objects[rng.below(i)]);
  for (size_t i = 0; i < count; ++i) objects[i]->next = objects[(i + 1) % count];
  Object* const start = count ? objects[0] : nullptr;
  jsb::report_phase("build", jsb::now_ms() - t0);

  // With the order gone, the resident set is the heap and the allocator's overhead.
  // khugepaged may collapse more of the heap later: it is not waited for.
  if (objects != nullptr) ::munmap(objects, order_bytes);
  const long rss_kb = jsb::rss_kb();
  const long huge_kb = anon_huge_kb();
  const long heap_kb = static_cast<long>(count * kObjectSize / 1024);

  // One full lap first: it checks that the chain is one cycle through every object
  // (an overlapping or damaged object breaks it) and brings the heap into the state
  // that the timed reads see.
  uint64_t sum = 0;
  if (start != nullptr) {
    const Object* o = start;
    size_t steps = 0;
    do {
      if (o->pad[5] != jsb::mix64(o->id))
        jsb::fail("hugeread: object %llu damaged", static_cast<unsigned long long>(o->id));
      sum += o->id * (steps + 1);
      o = o->next;
      ++steps;
    } while (o != start && steps <= count);
    if (o != start || steps != count)
      jsb::fail("hugeread: the chain is not one cycle of %zu objects", count);
  }

  const double t1 = jsb::now_ms();
  const Object* o = start;
  if (o != nullptr) {
    for (size_t i = 0; i < reads; ++i) o = o->next;
  }
  const double read_ms = jsb::now_ms() - t1;
  jsb::escape(o);
  jsb::report_phase("read", read_ms);
  if (o != nullptr) sum ^= o->id;

  // Free in the order of the chain: the order the program last touched them.
  if (start != nullptr) {
    Object* p = start->next;
    while (p != start) {
      Object* next = p->next;
      std::free(p);
      p = next;
    }
    std::free(start);
  }

  // The share of the resident set (the heap with the allocator's overhead) on hugepages:
  // never above 100 %, whatever the allocator's per-object overhead.
  std::printf("jsbench rss_peak_kb=%ld heap_kb=%ld ", rss_kb, heap_kb);
  if (huge_kb >= 0) {
    std::printf(
        "anon_huge_kb=%ld rss_huge_pct=%.1f\n", huge_kb,
        rss_kb > 0 ? 100.0 * static_cast<double>(huge_kb) / static_cast<double>(rss_kb) : 0.0);
  } else {
    std::printf("anon_huge_kb=n/a rss_huge_pct=n/a\n");
  }
  std::printf("jsbench ns_per_read=%.2f reads=%zu\n",
              reads ? read_ms * 1e6 / static_cast<double>(reads) : 0.0, reads);
  jsb::report_ops(count + reads);
  jsb::report_rss_after_free();
  return jsb::report_checksum(sum, true);
}
