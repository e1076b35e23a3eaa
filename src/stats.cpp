#include "stats.h"

#include "backend/heap_region.h"
#include "backend/huge.h"
#include "backend/meta_arena.h"
#include "backend/page_heap.h"
#include "frontend/percpu_cache.h"
#include "frontend/thread_cache.h"
#include "init.h"
#include "middle/middle.h"
#include "options.h"
#include "os/sys.h"
#include "report.h"

namespace jsmalloc {

namespace {

struct ClassStats {
  size_t spans;
  size_t objects_out;
  size_t transfer;
};

void CollectClass(size_t cls, ClassStats* c) {
  CentralFreeList::Stats cs = g_central[cls].GetStats();
  c->spans = cs.spans;
  c->objects_out = cs.objects_out;
  c->transfer = static_cast<size_t>(g_transfer[cls].count());
}

}  // namespace

void CollectStats(js_stats_t* s) {
  EnsureGlobalInit();
  *s = js_stats_t{};
  PageHeap::Stats ph = g_page_heap.GetStats();
  size_t small_out = 0, transfer = 0, central_free = 0, retained = 0;
  for (size_t cls = 1; cls < kNumClasses; ++cls) {
    ClassStats c;
    CollectClass(cls, &c);
    size_t size = kClasses[cls].size;
    retained += g_central[cls].retained() * size_t{kClasses[cls].span_pages} * kPageSize;
    small_out += c.objects_out * size;
    transfer += c.transfer * size;
    central_free += c.spans * size_t{kClasses[cls].span_pages} * kPageSize - c.objects_out * size;
  }
  ThreadCachePublishCurrent();  // exact for the calling thread, lazy for others
  // The front-end's caches: per thread, and in per-CPU mode per CPU.
  size_t thread = ThreadCacheBytes() + PercpuCacheBytes();
  if (thread + transfer > small_out) thread = small_out - transfer;  // published lazily
  s->reserved =
      g_region.reserved() + g_region.pagemap_bytes() + g_huge.bytes() + g_meta.bytes_mapped();
  s->committed = ph.small_bytes + ph.large_bytes + ph.free_committed_bytes + g_huge.bytes();
  s->in_use = small_out - thread - transfer + ph.large_bytes + g_huge.bytes();
  s->thread_cached = thread;
  s->transfer_cached = transfer;
  s->central_free = central_free;
  s->page_heap_free = ph.free_committed_bytes;
  s->released = ph.free_released_bytes;
  s->huge = g_huge.bytes();
  s->metadata = g_meta.bytes_mapped();
  s->spans_allocated = ph.spans_allocated;
  s->hugepage_backed = ph.hugepage_bytes;
  s->pending_release = ph.free_committed_bytes + retained;
  s->released_total = ph.released_total_bytes;
  s->refaulted_total = ph.refaulted_bytes;
}

size_t FormatStats(char* buf, size_t size, bool json) {
  js_stats_t s;
  CollectStats(&s);
  TextBuffer b(buf, size);
  struct Row {
    const char* name;
    const char* key;
    size_t value;
  } rows[] = {
      {"reserved", "reserved", s.reserved},
      {"committed", "committed", s.committed},
      {"in use", "in_use", s.in_use},
      {"thread caches", "thread_cached", s.thread_cached},
      {"transfer caches", "transfer_cached", s.transfer_cached},
      {"central free", "central_free", s.central_free},
      {"page heap free", "page_heap_free", s.page_heap_free},
      {"released to OS", "released", s.released},
      {"huge", "huge", s.huge},
      {"metadata", "metadata", s.metadata},
      {"on hugepages", "hugepage_backed", s.hugepage_backed},
      {"pending release", "pending_release", s.pending_release},
      {"released (total)", "released_total", s.released_total},
      {"faulted back", "refaulted_total", s.refaulted_total},
  };
  if (json) {
    b.Add("{");
    for (const Row& r : rows) b.Add("\"").Add(r.key).Add("\": ").Udec(r.value).Add(", ");
    b.Add("\"spans_allocated\": ").Udec(s.spans_allocated);
    b.Add(", \"threads\": ").Udec(ThreadCacheCount());
    b.Add(", \"cpu_caches\": [");
    for (uint32_t cpu = 0; cpu < PercpuCacheCpus(); ++cpu)
      b.Add(cpu != 0 ? ", " : "").Udec(PercpuCacheBytesOf(cpu));
    b.Add("]");
    b.Add(", \"huge_blocks\": ").Udec(g_huge.count());
    b.Add(", \"sub_region_bytes\": ").Udec(g_region.sub_region_size());
    b.Add(", \"partitions\": [");
    for (size_t i = 0; g_region.partition_mask(i) != 0; ++i) {
      if (i != 0) b.Add(", ");
      b.Add("{\"grown\": ").Udec(g_region.partition_mask(i));
      b.Add(", \"committed\": ").Udec(g_region.committed_mask(i));
      b.Add(", \"pending_release\": ").Udec(g_region.pending_mask(i)).Add("}");
    }
    b.Add("]");
    b.Add(", \"classes\": [");
    bool first = true;
    for (size_t cls = 1; cls < kNumClasses; ++cls) {
      ClassStats c;
      CollectClass(cls, &c);
      if (c.spans == 0 && c.objects_out == 0) continue;
      if (!first) b.Add(", ");
      first = false;
      b.Add("{\"size\": ").Udec(kClasses[cls].size).Add(", \"spans\": ").Udec(c.spans);
      b.Add(", \"objects_out\": ")
          .Udec(c.objects_out)
          .Add(", \"transfer\": ")
          .Udec(c.transfer)
          .Add("}");
    }
    b.Add("]}\n");
    return b.wanted();
  }
  b.Add("jsmalloc: statistics (pid ").Dec(os::ProcessId()).Add(")\n");
  for (const Row& r : rows) {
    b.Add("  ").Add(r.name).Add(":");
    for (size_t pad = __builtin_strlen(r.name); pad < 18; ++pad) b.Char(' ');
    b.Udec(r.value).Add(" (").Bytes(r.value).Add(")\n");
  }
  b.Add("  spans allocated:   ").Udec(s.spans_allocated).Add("\n");
  b.Add("  threads with caches: ").Udec(ThreadCacheCount()).Add("\n");
  for (uint32_t cpu = 0; cpu < PercpuCacheCpus(); ++cpu) {
    b.Add("  cpu ").Udec(cpu).Add(" cache:       ").Udec(PercpuCacheBytesOf(cpu)).Add("\n");
  }
  b.Add("  huge blocks:       ").Udec(g_huge.count()).Add("\n");
  // One bit per sub-region of each partition the heap grew into.
  for (size_t i = 0; g_region.partition_mask(i) != 0; ++i) {
    b.Add("  partition ").Udec(i).Add(" (").Bytes(g_region.sub_region_size()).Add(" sub-regions):");
    b.Add(" grown ").Hex(g_region.partition_mask(i));
    b.Add(" committed ").Hex(g_region.committed_mask(i));
    b.Add(" pending release ").Hex(g_region.pending_mask(i)).Add("\n");
  }
  b.Add("  resident (OS):     ").Bytes(os::ResidentBytes()).Add("\n");
  b.Add("  size class       spans  objects out  in transfer\n");
  for (size_t cls = 1; cls < kNumClasses; ++cls) {
    ClassStats c;
    CollectClass(cls, &c);
    if (c.spans == 0 && c.objects_out == 0) continue;
    b.Add("  ").Udec(kClasses[cls].size).Add("\t").Udec(c.spans).Add("\t").Udec(c.objects_out);
    b.Add("\t").Udec(c.transfer).Add("\n");
  }
  return b.wanted();
}

void PrintStats() {
  char buf[16384];
  size_t n = FormatStats(buf, sizeof(buf), false);
  os::WriteStderr(buf, n < sizeof(buf) ? n : sizeof(buf) - 1);
}

namespace {
void PrintStatsTo(bool json) {
  char buf[16384];
  size_t n = FormatStats(buf, sizeof(buf), json);
  os::WriteStderrAtExit(buf, n < sizeof(buf) ? n : sizeof(buf) - 1);
}
}  // namespace

namespace {
__attribute__((destructor)) void PrintStatsAtExit() {
  if (__atomic_load_n(&g_init_done, __ATOMIC_ACQUIRE) == 0) return;
  int64_t mode = GetOption(Option::kShowStats);
  if (mode == 0) return;
  PrintStatsTo(mode == 2);
}
}  // namespace

}  // namespace jsmalloc
