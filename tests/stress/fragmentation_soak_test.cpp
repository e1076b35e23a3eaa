// A bounded fragmentation soak (issue 15): rounds of objects of mixed sizes and mixed
// lifetimes around a live set of about 64 MiB. Every round frees a random half of the
// short-lived objects and a sixteenth of the long-lived ones, then allocates new ones
// until the live bytes are back at the target. The memory the allocator needs for that,
// RSS and jsmalloc's own `committed`, each less its value before the first round (which
// holds GoogleTest's and the test's own bookkeeping), must stay within a fixed factor of
// the live bytes and must not creep from round to round: a size class whose spans are
// never reused or released, or a page heap that leaves holes it cannot fill, shows here
// as a growing ratio.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "stress_common.h"

namespace {

using jstest::kKiB;
using jstest::kMiB;
using jstest::Tagged;

constexpr int kRounds = 40;
constexpr size_t kLiveTarget = 64 * kMiB;
constexpr size_t kMinSize = 16;
constexpr size_t kMaxSize = 64 * kKiB;
// 1 in 32 new objects is long-lived: in the steady state about a fifth of the live bytes,
// scattered over spans whose other objects come and go.
constexpr uint64_t kLongLivedOneIn = 32;
constexpr uint64_t kLongLivedDeathOneIn = 16;

// The bounds are the ones asked for with issue 15. Measured at 4e5d617 (before the release
// work), seeds 1..5, on the 2-core reference machine, in about 0.5 s:
//   RSS / live bytes, max over the rounds:        1.19-1.20 (1.05 in round 0)
//   committed / live bytes, max over the rounds:  1.21-1.24 (1.06 in round 0)
//   creep, max of rounds 30-39 / max of 10-19:    RSS 1.01-1.02, committed 1.00-1.01
// so the margins are about 33 % (RSS), 21 % (committed) and 8 % (creep). A page heap
// that loses its freed multi-page spans (a fault injected by hand) fails the RSS bound
// (6.6x) and the creep check (1.58x). Transparent hugepages are left as the system has
// them: a hugepage-aware back-end must meet the same bounds with them on.
constexpr double kMaxRssFactor = 1.6;
constexpr double kMaxCommittedFactor = 1.5;
constexpr double kMaxCreep = 1.1;

struct Live {
  Tagged block;
  bool long_lived;
};

struct Round {
  size_t live;
  size_t rss;        // RSS less the RSS before the first round
  size_t committed;  // jsmalloc's committed less its value before the first round
};

size_t SoakSize(jstest::Rng& rng) {
  return std::clamp(jstest::SkewedSize(rng, kMaxSize), kMinSize, kMaxSize);
}

double MaxRatio(const std::vector<Round>& rounds, size_t Round::*field) {
  double worst = 0;
  for (const Round& r : rounds) {
    worst = std::max(worst, static_cast<double>(r.*field) / static_cast<double>(r.live));
  }
  return worst;
}

size_t MaxOver(const std::vector<Round>& rounds, int from, int to, size_t Round::*field) {
  size_t worst = 0;
  for (int i = from; i < to; ++i) worst = std::max(worst, rounds[static_cast<size_t>(i)].*field);
  return worst;
}

std::string Table(const std::vector<Round>& rounds) {
  std::string out = "round   live MiB   RSS MiB (x live)   committed MiB (x live)\n";
  char line[128];
  for (size_t i = 0; i < rounds.size(); ++i) {
    const Round& r = rounds[i];
    const double live = static_cast<double>(r.live);
    std::snprintf(line, sizeof(line), "%5zu   %8.1f   %7.1f (%.2f)      %7.1f (%.2f)\n", i,
                  live / kMiB, static_cast<double>(r.rss) / kMiB, static_cast<double>(r.rss) / live,
                  static_cast<double>(r.committed) / kMiB, static_cast<double>(r.committed) / live);
    out += line;
  }
  return out;
}

// Runs the soak and returns one reading per round, taken with the live set refilled.
std::vector<Round> Soak(uint64_t seed, std::string* error) {
  jstest::Rng rng(seed);
  std::vector<Live> live;
  // Reserved before the baseline so that the test's own bookkeeping is not counted
  // (about 13,000 objects are live at a time).
  live.reserve(128 * 1024);
  std::vector<Round> rounds;
  rounds.reserve(kRounds);
  const size_t rss_start = jstest::RssBytes();
  const size_t committed_start = jstest::GetStats().committed;
  size_t live_bytes = 0;
  for (int round = 0; round < kRounds; ++round) {
    // Deaths: a random half of the short-lived objects, a few long-lived ones.
    size_t kept = 0;
    for (Live& o : live) {
      const bool dies = o.long_lived ? rng.Below(kLongLivedDeathOneIn) == 0 : rng.Below(2) == 0;
      if (!dies) {
        live[kept++] = o;
        continue;
      }
      if (jstest::CheckTagged(o.block) != o.block.n) {
        *error = "block of " + std::to_string(o.block.n) + " bytes corrupted in round " +
                 std::to_string(round);
        return rounds;
      }
      js_free(o.block.p);
      live_bytes -= o.block.n;
    }
    live.resize(kept);
    // Births, until the live set is back at the target.
    while (live_bytes < kLiveTarget) {
      const size_t n = SoakSize(rng);
      Tagged t = jstest::AllocTagged(n);
      if (t.p == nullptr) {
        *error = "js_malloc(" + std::to_string(n) + ") failed in round " + std::to_string(round);
        return rounds;
      }
      live.push_back({t, rng.Below(kLongLivedOneIn) == 0});
      live_bytes += n;
    }
    const size_t rss = jstest::RssBytes();
    const size_t committed = jstest::GetStats().committed;
    rounds.push_back({live_bytes, rss > rss_start ? rss - rss_start : 0,
                      committed > committed_start ? committed - committed_start : 0});
  }
  for (const Live& o : live) js_free(o.block.p);
  return rounds;
}

TEST(FragmentationSoak, MemoryStaysWithinAFactorOfTheLiveBytesAndDoesNotCreep) {
  std::string error;
  const char* seed_env = std::getenv("JSTEST_SOAK_SEED");
  const uint64_t seed = seed_env ? std::strtoull(seed_env, nullptr, 10) : 1;
  const std::vector<Round> rounds = Soak(seed, &error);
  ASSERT_TRUE(error.empty()) << error;
  ASSERT_EQ(rounds.size(), static_cast<size_t>(kRounds));
  const std::string table = Table(rounds);
  // JSTEST_SOAK_TABLE=1 prints the rounds even when the test passes (to re-measure the
  // bounds above).
  if (std::getenv("JSTEST_SOAK_TABLE") != nullptr) std::fputs(table.c_str(), stdout);

  EXPECT_LE(MaxRatio(rounds, &Round::rss), kMaxRssFactor) << table;
  EXPECT_LE(MaxRatio(rounds, &Round::committed), kMaxCommittedFactor) << table;

  const size_t rss_early = MaxOver(rounds, 10, 20, &Round::rss);
  const size_t rss_late = MaxOver(rounds, kRounds - 10, kRounds, &Round::rss);
  EXPECT_LE(static_cast<double>(rss_late), kMaxCreep * static_cast<double>(rss_early))
      << "RSS crept: max of the last 10 rounds " << rss_late << " bytes, of rounds 10-19 "
      << rss_early << "\n"
      << table;
  const size_t committed_early = MaxOver(rounds, 10, 20, &Round::committed);
  const size_t committed_late = MaxOver(rounds, kRounds - 10, kRounds, &Round::committed);
  EXPECT_LE(static_cast<double>(committed_late), kMaxCreep * static_cast<double>(committed_early))
      << "committed crept: max of the last 10 rounds " << committed_late
      << " bytes, of rounds 10-19 " << committed_early << "\n"
      << table;
}

}  // namespace
