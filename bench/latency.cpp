// Latency: CPU cycles (rdtsc) per malloc+free pair, per size class and access pattern.
//
//   tight    p = malloc(size); touch; free(p), repeated
//   batch    1000 x malloc(size), then the 1000 frees in allocation order
//   random   a pool of 1000 live blocks; each step frees a random slot and refills it
//   churn    threads started one after another (--threads at a time); each allocates
//            --objects blocks of 64 B, hands every other one to a long-lived consumer
//            thread that frees them, frees the rest itself and exits, so its cache
//            dies while another thread still holds its objects
//
// Each (pattern, size) cell is the median over --reps repetitions of a fixed number of
// pairs, so a context switch or an interrupt in one repetition does not move it. The
// single-threaded patterns run pinned to the CPU the process started on (a migration
// would change the TSC's meaning and the caches); a failed pin is only a warning.
// Output, one line per cell:
//   jsbench latency pattern=<p> size=<bytes> cycles=<median cycles per pair>
#include <pthread.h>
#include <sched.h>
#include <x86intrin.h>

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "common.h"

namespace {

constexpr size_t kSizes[] = {8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16000, 32768};
constexpr size_t kBatch = 1000;
constexpr size_t kPool = 1000;
constexpr size_t kChurnSize = 64;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

void report(const char* pattern, size_t size, double cycles) {
  std::printf("jsbench latency pattern=%s size=%zu cycles=%.1f\n", pattern, size, cycles);
}

// Every block gets one byte written and read back: the same work under every
// allocator, and the byte sum is the checksum.
inline unsigned char* touch(void* p, size_t size, uint64_t i) {
  auto* b = static_cast<unsigned char*>(jsb::check_alloc(p, size));
  b[0] = static_cast<unsigned char>(i);
  jsb::escape(b);
  return b;
}

double tight(size_t size, size_t pairs, uint64_t& sum) {
  const uint64_t t0 = __rdtsc();
  for (size_t i = 0; i < pairs; ++i) {
    unsigned char* p = touch(std::malloc(size), size, i);
    sum += p[0];
    std::free(p);
  }
  return static_cast<double>(__rdtsc() - t0) / static_cast<double>(pairs);
}

double batch(size_t size, size_t pairs, uint64_t& sum) {
  static unsigned char* blocks[kBatch];
  const size_t rounds = std::max<size_t>(1, pairs / kBatch);
  const uint64_t t0 = __rdtsc();
  for (size_t r = 0; r < rounds; ++r) {
    for (size_t i = 0; i < kBatch; ++i) blocks[i] = touch(std::malloc(size), size, i);
    for (size_t i = 0; i < kBatch; ++i) {
      sum += blocks[i][0];
      std::free(blocks[i]);
    }
  }
  return static_cast<double>(__rdtsc() - t0) / static_cast<double>(rounds * kBatch);
}

// slots: kPool live blocks of `size`; order: random slot numbers, a power of two long.
double random_steps(size_t size, size_t pairs, std::vector<unsigned char*>& slots,
                    const std::vector<uint16_t>& order, uint64_t& sum) {
  const size_t mask = order.size() - 1;
  const uint64_t t0 = __rdtsc();
  for (size_t i = 0; i < pairs; ++i) {
    const size_t s = order[i & mask];
    sum += slots[s][0];
    std::free(slots[s]);
    slots[s] = touch(std::malloc(size), size, i);
  }
  return static_cast<double>(__rdtsc() - t0) / static_cast<double>(pairs);
}

// The consumer of the churn pattern: frees whatever the short-lived threads hand it.
class Consumer {
 public:
  Consumer() : thread_([this] { loop(); }) {}
  ~Consumer() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }
  void give(std::vector<unsigned char*>&& blocks) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (unsigned char* b : blocks) inbox_.push_back(b);
    }
    cv_.notify_one();
    blocks.clear();
  }
  // Waits until every block handed over so far is freed.
  void drain() {
    std::unique_lock<std::mutex> lock(mu_);
    idle_.wait(lock, [this] { return inbox_.empty() && !busy_; });
  }
  uint64_t sum() const { return sum_; }

 private:
  void loop() {
    std::vector<unsigned char*> work;
    work.reserve(1 << 16);
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      cv_.wait(lock, [this] { return done_ || !inbox_.empty(); });
      if (inbox_.empty() && done_) return;
      work.swap(inbox_);
      busy_ = true;
      lock.unlock();
      for (unsigned char* b : work) {
        sum_ += b[0];
        std::free(b);
      }
      work.clear();
      lock.lock();
      busy_ = false;
      if (inbox_.empty()) idle_.notify_all();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_, idle_;
  std::vector<unsigned char*> inbox_;
  bool busy_ = false, done_ = false;
  uint64_t sum_ = 0;  // read only after drain()
  std::thread thread_;
};

// One repetition: `rounds` rounds of `threads` threads, each allocating `objects`.
double churn(Consumer& consumer, size_t rounds, int threads, size_t objects, uint64_t& sum) {
  std::vector<uint64_t> sums(static_cast<size_t>(threads));
  const uint64_t t0 = __rdtsc();
  for (size_t r = 0; r < rounds; ++r) {
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
      pool.emplace_back([&consumer, &sums, t, objects] {
        std::vector<unsigned char*> mine, handed;
        mine.reserve(objects);
        handed.reserve(objects / 2 + 1);
        for (size_t i = 0; i < objects; ++i) {
          unsigned char* b = touch(std::malloc(kChurnSize), kChurnSize, i);
          (i % 2 ? handed : mine).push_back(b);
        }
        consumer.give(std::move(handed));
        uint64_t s = 0;
        for (unsigned char* b : mine) {
          s += b[0];
          std::free(b);
        }
        sums[static_cast<size_t>(t)] += s;
      });
    }
    for (auto& th : pool) th.join();
  }
  consumer.drain();
  const uint64_t cycles = __rdtsc() - t0;
  for (uint64_t s : sums) sum += s;
  return static_cast<double>(cycles) /
         static_cast<double>(rounds * static_cast<size_t>(threads) * objects);
}

}  // namespace

int main(int argc, char** argv) {
  jsb::Cli cli(argc, argv, "latency", {"reps", "objects"},
               "[--reps N (31)] [--objects N (churn, per thread: 1000)]");
  cli.announce();
  const size_t reps = static_cast<size_t>(std::max(1L, cli.num("reps", 31)));
  const size_t objects = static_cast<size_t>(std::max(2L, cli.num("objects", 1000)));
  // Scale 1.0: 100,000 pairs per repetition of a cell, 100 churn rounds per repetition.
  const size_t pairs = cli.scaled(100000, kBatch);
  const size_t churn_rounds = cli.scaled(100, 1);

  cpu_set_t original;
  const bool have_original = sched_getaffinity(0, sizeof(original), &original) == 0;
  const int cpu = sched_getcpu();
  cpu_set_t one;
  CPU_ZERO(&one);
  if (cpu >= 0) CPU_SET(cpu, &one);
  if (cpu < 0 || sched_setaffinity(0, sizeof(one), &one) != 0) {
    std::fprintf(stderr, "bench-latency: cannot pin to a CPU; cycles are less stable\n");
  }

  uint64_t sum = 0, ops = 0;
  jsb::Rng rng(cli.seed);
  std::vector<uint16_t> order(4096);
  for (auto& o : order) o = static_cast<uint16_t>(rng.below(kPool));

  for (const char* pattern : {"tight", "batch", "random"}) {
    for (size_t size : kSizes) {
      if (pairs == 0) {
        report(pattern, size, 0);
        continue;
      }
      std::vector<unsigned char*> slots;
      if (pattern[0] == 'r') {
        for (size_t i = 0; i < kPool; ++i) slots.push_back(touch(std::malloc(size), size, i));
      }
      std::vector<double> cycles;
      // One untimed repetition first: the allocator's caches for this size are warm.
      for (size_t r = 0; r <= reps; ++r) {
        double c;
        if (pattern[0] == 't') {
          c = tight(size, pairs, sum);
        } else if (pattern[0] == 'b') {
          c = batch(size, pairs, sum);
        } else {
          c = random_steps(size, pairs, slots, order, sum);
        }
        if (r > 0) cycles.push_back(c);
        ops += pairs;
      }
      for (unsigned char* b : slots) {
        sum += b[0];
        std::free(b);
      }
      report(pattern, size, median(cycles));
    }
  }

  // The churn threads run on every CPU the process may use: pinned to one, the
  // consumer and the short-lived threads would only take turns.
  if (have_original) sched_setaffinity(0, sizeof(original), &original);
  if (churn_rounds == 0) {
    report("churn", kChurnSize, 0);
  } else {
    Consumer consumer;
    std::vector<double> cycles;
    const size_t churn_reps = std::max<size_t>(3, reps / 4);
    for (size_t r = 0; r <= churn_reps; ++r) {
      const double c = churn(consumer, churn_rounds, cli.threads, objects, sum);
      if (r > 0) cycles.push_back(c);
      ops += churn_rounds * static_cast<size_t>(cli.threads) * objects;
    }
    sum += consumer.sum();
    report("churn", kChurnSize, median(cycles));
  }

  jsb::report_ops(ops);
  jsb::report_rss_after_free();
  return jsb::report_checksum(sum, true);
}
