#include "background.h"

#include "backend/page_heap.h"
#include "frontend/percpu_cache.h"
#include "middle/span_source.h"
#include "os/sys.h"
#include "report.h"
#include "valgrind_hooks.h"

namespace jsmalloc {

constinit int g_background_started = 0;

namespace {

// Set by this library's constructor, which runs after libc's: a malloc before it may
// come from the dynamic loader, before libc can create threads.
constinit int g_threads_possible = 0;

__attribute__((constructor)) void NoteThreadsPossible() {
  __atomic_store_n(&g_threads_possible, 1, __ATOMIC_RELEASE);
}

// A zero decay time (pages go back at once) must not make the thread spin.
constexpr uint64_t kMinPeriodNs = 1000000;

// Holds no lock while it sleeps and makes no allocation, so it has no thread cache to
// keep memory in; it never exits, and being detached needs no join at process exit.
void* BackgroundMain(void*) {
  ValgrindQuiet quiet;  // the thread runs allocator code only (valgrind_hooks.h)
  os::NameThisThread("jsmalloc-bg");
  for (;;) {
    // Read each time, as the page heap does: set_decay_ns may change it at any time.
    const uint64_t period = g_page_heap.decay_ns() / 4;
    os::SleepNanos(period > kMinPeriodNs ? period : kMinPeriodNs);
    PercpuCacheDrainIdle();
    ReleaseIdleMemory();
    CollapseDenseHugepages();
  }
  return nullptr;
}

}  // namespace

void StartBackgroundThreadSlow() {
  if (__atomic_load_n(&g_threads_possible, __ATOMIC_ACQUIRE) == 0) return;
  int expected = 0;
  if (!__atomic_compare_exchange_n(&g_background_started, &expected, 1, false, __ATOMIC_ACQ_REL,
                                   __ATOMIC_RELAXED))
    return;
  // Not tried again on failure (every 64th slow call would): memory still goes back
  // from the slow paths, as without the option.
  const int rc = os::StartDaemonThread(BackgroundMain);
  if (rc != 0) {
    char msg[128];
    TextBuffer m(msg, sizeof(msg));
    m.Add("jsmalloc: JSMALLOC_BACKGROUND_THREAD=1 but no thread could be started (error ")
        .Dec(rc)
        .Add(")\n");
    os::WriteStderr(m.data(), m.size());
  }
}

}  // namespace jsmalloc
