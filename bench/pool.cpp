// A thread pool (issue 17): a fixed pool of `threads` workers takes `tasks` short tasks
// from a shared counter. A task allocates a few dozen small blocks (log-uniform
// 16 B .. 1 KiB), writes and checks them, frees most, and leaves one result block in a
// shared mailbox whose previous occupant, left by whichever task came before (most
// likely on another thread), it frees. With more workers than CPUs, a task's thread is
// rarely the one that ran the last task on its CPU: per-thread caches go cold where
// per-CPU caches stay warm.
//
// Full scale: 2,000,000 tasks of 32 blocks each.
#include <atomic>
#include <thread>

#include "common.h"

namespace {

constexpr size_t kMailboxes = 256;

struct alignas(64) Mailbox {
  std::atomic<void*> block{nullptr};
};

struct alignas(64) Result {
  uint64_t allocated = 0, freed = 0;
};

}  // namespace

int main(int argc, char** argv) {
  jsb::Cli cli(argc, argv, "thread-pool", {"blocks"}, "[--blocks N]");
  cli.announce();
  const size_t blocks = static_cast<size_t>(cli.num("blocks", 32));
  const size_t nthreads = static_cast<size_t>(cli.threads);
  const size_t tasks = cli.scaled(2000000);
  std::vector<Mailbox> mailboxes(kMailboxes);
  std::vector<Result> results(nthreads);
  std::atomic<size_t> next_task{0};

  auto worker = [&](size_t t) {
    Result& res = results[t];
    std::vector<void*> held(blocks);
    for (size_t task; (task = next_task.fetch_add(1, std::memory_order_relaxed)) < tasks;) {
      jsb::Rng rng(cli.seed, task);
      for (size_t i = 0; i < blocks; ++i) {
        const size_t size = rng.log_uniform(16, 1024);
        void* p = jsb::check_alloc(std::malloc(size), size);
        const uint64_t id = (uint64_t{task} << 8) + i;
        jsb::fill_block(p, size, id);
        res.allocated += jsb::block_value(jsb::block_header(size, id));
        held[i] = p;
      }
      for (size_t i = 1; i < blocks; ++i) {
        res.freed += jsb::check_block(held[i], "thread-pool");
        std::free(held[i]);
      }
      void* old = mailboxes[task % kMailboxes].block.exchange(held[0], std::memory_order_acq_rel);
      if (old != nullptr) {
        res.freed += jsb::check_block(old, "thread-pool");
        std::free(old);
      }
    }
  };

  const double t0 = jsb::now_ms();
  std::vector<std::thread> threads;
  for (size_t t = 0; t < nthreads; ++t) threads.emplace_back(worker, t);
  for (auto& th : threads) th.join();
  jsb::report_phase("tasks", jsb::now_ms() - t0);
  uint64_t allocated = 0, freed = 0;
  for (const Result& r : results) {
    allocated += r.allocated;
    freed += r.freed;
  }
  for (Mailbox& m : mailboxes) {
    void* p = m.block.exchange(nullptr);
    if (p != nullptr) {
      freed += jsb::check_block(p, "thread-pool");
      std::free(p);
    }
  }
  jsb::report_ops(tasks * blocks);
  jsb::report_rss_after_free();
  if (allocated != freed) jsb::fail("thread-pool: freed blocks do not add up to allocated blocks");
  return jsb::report_checksum(freed, true);
}
