// Producer/consumer (after xmalloc-test by Lever and Boreham, "malloc() Performance in
// a Multithreaded Linux Environment", 2000, as run by mimalloc-bench).
//
// The threads form a ring. Each thread allocates objects of random size, fills them and
// passes them in batches to the next thread, which verifies and frees them: every
// object is freed by a thread other than the one that allocated it (with one thread,
// the ring is the thread itself). The batch records that carry the objects are
// allocated by the producer and freed by the consumer too. A producer runs ahead by at
// most `ahead` batches; while it waits it keeps consuming, so the ring never deadlocks.
//
// Full scale: 50,000,000 objects in batches of 64, sizes log-uniform in 8..1024.
#include <condition_variable>
#include <mutex>
#include <thread>

#include "common.h"

namespace {

struct Batch {
  Batch* next;
  size_t count;
  void* objs[];  // flexible array: allocated with malloc
};

struct alignas(64) Queue {
  std::mutex mu;
  std::condition_variable cv;
  Batch* head = nullptr;
  Batch* tail = nullptr;
  std::atomic<size_t> length{0};

  void push(Batch* b) {
    b->next = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu);
      if (tail)
        tail->next = b;
      else
        head = b;
      tail = b;
      length.fetch_add(1, std::memory_order_relaxed);
    }
    cv.notify_one();
  }
  // Takes every queued batch; waits for one if `wait`.
  Batch* take_all(bool wait) {
    std::unique_lock<std::mutex> lock(mu);
    if (wait) cv.wait(lock, [this] { return head != nullptr; });
    Batch* all = head;
    head = tail = nullptr;
    length.store(0, std::memory_order_relaxed);
    return all;
  }
};

struct Config {
  size_t batch, ahead, min_size, max_size;
  uint64_t seed;
};

struct alignas(64) Result {
  uint64_t allocated = 0, freed = 0;
};

void ring_worker(const Config& c, std::vector<Queue>& queues, size_t me, size_t nthreads,
                 size_t my_objects, size_t incoming_batches, Result& res) {
  Queue& out = queues[(me + 1) % nthreads];
  Queue& in = queues[me];
  jsb::Rng rng(c.seed, me);
  const size_t my_batches = (my_objects + c.batch - 1) / c.batch;
  size_t produced = 0, consumed = 0, made = 0;
  uint64_t allocated = 0, freed = 0;

  auto consume = [&](Batch* b) {
    while (b != nullptr) {
      Batch* next = b->next;
      for (size_t i = 0; i < b->count; ++i) {
        freed += jsb::check_block(b->objs[i], "xmalloc");
        std::free(b->objs[i]);
      }
      std::free(b);
      ++consumed;
      b = next;
    }
  };

  while (produced < my_batches || consumed < incoming_batches) {
    bool progress = false;
    if (produced < my_batches && out.length.load(std::memory_order_relaxed) < c.ahead) {
      const size_t n = std::min(c.batch, my_objects - made);
      const size_t bytes = sizeof(Batch) + n * sizeof(void*);
      auto* b = static_cast<Batch*>(jsb::check_alloc(std::malloc(bytes), bytes));
      b->count = n;
      for (size_t i = 0; i < n; ++i) {
        const size_t size = rng.log_uniform(c.min_size, c.max_size);
        void* p = jsb::check_alloc(std::malloc(size), size);
        const uint64_t id = (me << 27) + made + i;
        jsb::fill_block(p, size, id);
        allocated += jsb::block_value(jsb::block_header(size, id));
        b->objs[i] = p;
      }
      made += n;
      ++produced;
      out.push(b);
      progress = true;
    }
    if (consumed < incoming_batches) {
      // Block only when there is nothing left to produce: the predecessor never waits
      // on us while our queue is non-empty, so it will deliver.
      const bool wait = !progress && produced == my_batches;
      Batch* b = in.take_all(wait);
      if (b != nullptr) progress = true;
      consume(b);
    }
    if (!progress) std::this_thread::yield();  // our consumer is behind; let it run
  }
  res.allocated = allocated;
  res.freed = freed;
}

}  // namespace

int main(int argc, char** argv) {
  jsb::Cli cli(argc, argv, "xmalloc", {"batch", "ahead", "min", "max"},
               "[--batch N] [--ahead BATCHES] [--min BYTES] [--max BYTES]");
  cli.announce();
  Config c;
  c.batch = static_cast<size_t>(cli.num("batch", 64, 1));
  c.ahead = static_cast<size_t>(cli.num("ahead", 64, 1));
  c.min_size = static_cast<size_t>(cli.num("min", 8, 8));
  c.max_size = static_cast<size_t>(cli.num("max", 1024));
  c.seed = cli.seed;
  if (c.max_size < c.min_size) cli.refuse("max", "at least --min");
  const size_t nthreads = static_cast<size_t>(cli.threads);
  const size_t total = cli.scaled(50e6);

  std::vector<Queue> queues(nthreads);
  std::vector<Result> results(nthreads);
  std::vector<size_t> objects(nthreads), batches(nthreads);
  for (size_t t = 0; t < nthreads; ++t) {
    objects[t] = jsb::share(total, nthreads, t);
    batches[t] = (objects[t] + c.batch - 1) / c.batch;
  }
  const double t0 = jsb::now_ms();
  std::vector<std::thread> threads;
  for (size_t t = 0; t < nthreads; ++t) {
    const size_t pred = (t + nthreads - 1) % nthreads;
    threads.emplace_back(ring_worker, std::cref(c), std::ref(queues), t, nthreads, objects[t],
                         batches[pred], std::ref(results[t]));
  }
  for (auto& th : threads) th.join();
  jsb::report_phase("ring", jsb::now_ms() - t0);
  uint64_t allocated = 0, freed = 0;
  for (const Result& r : results) {
    allocated += r.allocated;
    freed += r.freed;
  }
  jsb::report_ops(total);
  jsb::report_rss_after_free();
  if (allocated != freed) jsb::fail("xmalloc: freed objects do not add up to allocated ones");
  return jsb::report_checksum(freed, true);
}
