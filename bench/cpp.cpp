// A C++ program's allocations: std::map, std::string, std::vector, std::shared_ptr.
//
// Each thread runs rounds of: build a std::map<std::string, std::vector<int>> of
// `entries` entries (keys of 8..64 characters, most beyond the small-string buffer;
// values grown by push_back), attach std::shared_ptr records (make_shared and
// shared_ptr(new)) shared between a vector and a map, look keys up, erase half the
// entries, reinsert, then drop everything. A few strings per round are posted, in
// shared_ptrs, to a mailbox another thread takes them from, so some objects are
// destroyed by a different thread than the one that made them.
//
// Everything is checked against values recomputed from the round's random stream.
// The total number of rounds is fixed and split over the threads.
// Full scale: 2,000 rounds of 2,000 entries.
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common.h"

namespace {

struct Record {
  std::string name;
  std::vector<uint64_t> history;
  uint64_t weight;
};

// Mailbox of strings travelling between threads.
struct Mailbox {
  std::mutex mu;
  std::vector<std::shared_ptr<const std::string>> items;
};

uint64_t hash_str(const std::string& s) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ULL;
  return h;
}

std::string make_key(jsb::Rng& rng) {
  const size_t len = rng.range(8, 64);
  std::string s;
  for (size_t i = 0; i < len; ++i) s.push_back(static_cast<char>('a' + rng.below(26)));
  return s;
}

struct alignas(64) Result {
  uint64_t local = 0;     // from this thread's own containers (deterministic per thread)
  uint64_t received = 0;  // hashes of mailbox strings this thread destroyed
  uint64_t sent = 0;      // hashes of mailbox strings this thread posted
};

void worker(uint64_t seed, size_t index, size_t rounds, size_t entries, Mailbox& mailbox,
            Result& res) {
  uint64_t local = 0, received = 0, sent = 0;
  for (size_t r = 0; r < rounds; ++r) {
    jsb::Rng rng(seed, (index << 32) | r);
    std::map<std::string, std::vector<int>> map;
    std::vector<std::shared_ptr<Record>> records;
    std::map<std::string, std::shared_ptr<Record>> by_name;
    std::vector<std::string> keys;
    keys.reserve(entries);
    for (size_t i = 0; i < entries; ++i) {
      std::string key = make_key(rng);
      auto& vec = map[key];
      const size_t n = rng.below(48);
      for (size_t j = 0; j < n; ++j) vec.push_back(static_cast<int>(i * 31 + j));
      if (i % 4 == 0) {
        auto rec = (i % 8 == 0) ? std::make_shared<Record>()
                                : std::shared_ptr<Record>(new Record());
        rec->name = key + "#" + std::to_string(i);  // unique
        rec->weight = i;
        for (size_t j = 0; j < (i % 13); ++j) rec->history.push_back(j * i);
        records.push_back(rec);
        by_name[rec->name] = std::move(rec);
      }
      keys.push_back(std::move(key));
    }
    // Look every key up and fold in its vector.
    for (const std::string& k : keys) {
      auto it = map.find(k);
      if (it == map.end()) jsb::fail("cpp: key lost from std::map");
      for (int v : it->second) local += static_cast<uint64_t>(v);
      local += hash_str(k);
    }
    // Erase every other key (duplicates may already be gone), then reinsert new ones.
    for (size_t i = 0; i < keys.size(); i += 2) map.erase(keys[i]);
    for (size_t i = 0; i < entries / 2; ++i) {
      std::string key = make_key(rng) + "+";
      map.emplace(std::move(key), std::vector<int>(rng.below(16), static_cast<int>(i)));
    }
    for (const auto& [k, v] : map) {
      local += hash_str(k) ^ v.size();
      for (int x : v) local += static_cast<uint64_t>(x);
    }
    // Shared records: drop the vector's references, then check the map's.
    for (auto& rec : records) {
      if (rec.use_count() != 2) jsb::fail("cpp: shared_ptr use count %ld", rec.use_count());
    }
    records.clear();
    for (const auto& [name, rec] : by_name) {
      if (rec.use_count() != 1 || rec->name != name) jsb::fail("cpp: shared record damaged");
      local += rec->weight;
      for (uint64_t h : rec->history) local += h;
    }
    // Post a few strings for other threads; take whatever others posted.
    std::vector<std::shared_ptr<const std::string>> out, in;
    for (size_t i = 0; i < 8; ++i) {
      auto s = std::make_shared<const std::string>(make_key(rng) + std::to_string(r));
      sent += hash_str(*s);
      out.push_back(std::move(s));
    }
    {
      std::lock_guard<std::mutex> lock(mailbox.mu);
      in.swap(mailbox.items);
      for (auto& s : out) mailbox.items.push_back(std::move(s));
    }
    for (const auto& s : in) received += hash_str(*s);
  }
  res.local = local;
  res.received = received;
  res.sent = sent;
}

}  // namespace

int main(int argc, char** argv) {
  jsb::Cli cli(argc, argv, "cpp", {"entries"}, "[--entries N]");
  cli.announce();
  const size_t entries = static_cast<size_t>(cli.num("entries", 2000));
  const size_t rounds = cli.scaled(2000, 0);
  const size_t nthreads = static_cast<size_t>(cli.threads);
  Mailbox mailbox;
  std::vector<Result> results(nthreads);
  const double t0 = jsb::now_ms();
  std::vector<std::thread> threads;
  for (size_t t = 0; t < nthreads; ++t)
    threads.emplace_back(worker, cli.seed, t, jsb::share(rounds, nthreads, t), entries,
                         std::ref(mailbox), std::ref(results[t]));
  for (auto& th : threads) th.join();
  jsb::report_phase("rounds", jsb::now_ms() - t0);
  uint64_t local = 0, received = 0, sent = 0;
  for (const Result& r : results) {
    local += r.local;
    received += r.received;
    sent += r.sent;
  }
  for (const auto& s : mailbox.items) received += hash_str(*s);
  std::vector<std::shared_ptr<const std::string>>().swap(mailbox.items);
  if (received != sent) jsb::fail("cpp: mailbox strings do not add up");
  jsb::report_ops(rounds * entries);
  jsb::report_rss_after_free();
  return jsb::report_checksum(local + sent, true);
}
