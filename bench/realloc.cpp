// Growth by realloc: strings that grow a few bytes at a time and vectors that double.
//
// `strings` strings are live at once. A step picks one at random and appends 1..32
// bytes, reallocating it to exactly its new length + 1 (how naive C string building
// grows), or, one step in eight, appends to a vector instead: `vectors` vectors of
// 8-byte elements are live at once and double their capacity with realloc when full.
// A string that reaches its target length (log-uniform 16 B .. 64 KiB) and a vector
// that reaches its target (log-uniform 64 B .. 4 MiB) are verified byte by byte and
// freed, and a new empty one takes their place. Interleaving many growing blocks means
// growth in place is sometimes possible and sometimes not.
//
// Every byte written is a function of (object id, position), so the check at the end of
// each object's life catches a realloc that lost or moved data wrongly.
// Full scale: 40,000,000 appends.
#include "common.h"

namespace {

struct Str {
  char* p = nullptr;
  size_t len = 0, target = 0;
  uint64_t id = 0;
};
struct Vec {
  uint64_t* p = nullptr;
  size_t len = 0, cap = 0, target = 0;
  uint64_t id = 0;
};

inline char str_byte(uint64_t id, size_t pos) {
  return static_cast<char>('a' + ((id * 7 + pos * 13) % 26));
}
inline uint64_t vec_elem(uint64_t id, size_t pos) {
  return id * 0x100000001b3ULL + pos;
}

uint64_t finish_str(Str& s) {
  uint64_t sum = 0;
  for (size_t i = 0; i < s.len; ++i) {
    if (s.p[i] != str_byte(s.id, i))
      jsb::fail("realloc: string %llu of %zu bytes damaged at %zu",
                static_cast<unsigned long long>(s.id), s.len, i);
    sum += static_cast<unsigned char>(s.p[i]);
  }
  if (s.p != nullptr && s.p[s.len] != '\0') jsb::fail("realloc: string terminator lost");
  std::free(s.p);
  s = Str{};
  return sum;
}

uint64_t finish_vec(Vec& v) {
  uint64_t sum = 0;
  for (size_t i = 0; i < v.len; ++i) {
    if (v.p[i] != vec_elem(v.id, i))
      jsb::fail("realloc: vector %llu of %zu elements damaged at %zu",
                static_cast<unsigned long long>(v.id), v.len, i);
    sum += v.p[i];
  }
  std::free(v.p);
  v = Vec{};
  return sum;
}

}  // namespace

int main(int argc, char** argv) {
  jsb::Cli cli(argc, argv, "realloc", {"strings", "vectors"}, "[--strings N] [--vectors N]");
  cli.announce();
  const size_t nstr = static_cast<size_t>(cli.num("strings", 1000, 1));
  const size_t nvec = static_cast<size_t>(cli.num("vectors", 32, 1));
  const size_t steps = cli.scaled(40e6);
  jsb::Rng rng(cli.seed);
  std::vector<Str> strs(nstr);
  std::vector<Vec> vecs(nvec);
  uint64_t next_id = 1, sum = 0, reallocs = 0;
  auto new_str = [&](Str& s) {
    s.id = next_id++;
    s.target = rng.log_uniform(16, 65536);
  };
  auto new_vec = [&](Vec& v) {
    v.id = next_id++;
    v.target = rng.log_uniform(8, 512 * 1024);  // elements: 64 B .. 4 MiB
  };
  for (Str& s : strs) new_str(s);
  for (Vec& v : vecs) new_vec(v);

  const double t0 = jsb::now_ms();
  for (size_t k = 0; k < steps; ++k) {
    if (rng.below(8) != 0) {
      Str& s = strs[rng.below(nstr)];
      const size_t add = rng.range(1, 32);
      const size_t bytes = s.len + add + 1;
      char* np = static_cast<char*>(std::realloc(s.p, bytes));
      jsb::check_alloc(np, bytes);
      ++reallocs;
      s.p = np;
      for (size_t i = 0; i < add; ++i) s.p[s.len + i] = str_byte(s.id, s.len + i);
      s.len += add;
      s.p[s.len] = '\0';
      if (s.len >= s.target) {
        sum += finish_str(s);
        new_str(s);
      }
    } else {
      Vec& v = vecs[rng.below(nvec)];
      // Append a run of 1..64 elements, doubling the capacity when it is reached.
      const size_t add = rng.range(1, 64);
      for (size_t i = 0; i < add; ++i) {
        if (v.len == v.cap) {
          const size_t cap = v.cap ? v.cap * 2 : 4;
          auto* np = static_cast<uint64_t*>(std::realloc(v.p, cap * sizeof(uint64_t)));
          jsb::check_alloc(np, cap * sizeof(uint64_t));
          ++reallocs;
          v.p = np;
          v.cap = cap;
        }
        v.p[v.len] = vec_elem(v.id, v.len);
        ++v.len;
      }
      if (v.len >= v.target) {
        sum += finish_vec(v);
        new_vec(v);
      }
    }
  }
  jsb::report_phase("grow", jsb::now_ms() - t0);
  for (Str& s : strs) sum += finish_str(s);
  for (Vec& v : vecs) sum += finish_vec(v);
  std::vector<Str>().swap(strs);
  std::vector<Vec>().swap(vecs);
  std::printf("jsbench reallocs=%llu\n", static_cast<unsigned long long>(reallocs));
  jsb::report_ops(steps);
  jsb::report_rss_after_free();
  return jsb::report_checksum(sum, true);
}
