// A fixed set of small integers [0, N) as a bitmap, for slow paths that visit only the
// members (the page heap's non-empty free lists, a thread cache's limited lists), or
// that ask about one (the classes a thread cache has been served).
#pragma once

#include <cstddef>
#include <cstdint>
#include <iterator>

namespace jsmalloc {

template <size_t N>
struct BitSet {
  uint64_t words[(N + 63) / 64] = {};

  void Assign(size_t i, bool member) {
    uint64_t bit = uint64_t{1} << (i % 64);
    words[i / 64] = member ? (words[i / 64] | bit) : (words[i / 64] & ~bit);
  }
  bool Contains(size_t i) const { return ((words[i / 64] >> (i % 64)) & 1) != 0; }
  int Count() const {
    int n = 0;
    for (uint64_t w : words) n += __builtin_popcountll(w);
    return n;
  }
  // The smallest member >= from, or N if none.
  size_t NextFrom(size_t from) const {
    for (size_t w = from / 64; w < std::size(words); ++w) {
      uint64_t m = words[w];
      if (w == from / 64) m &= ~uint64_t{0} << (from % 64);
      if (m != 0) return (w * 64) + static_cast<size_t>(__builtin_ctzll(m));
    }
    return N;
  }
  // The largest member <= from (from < N), or N if none.
  size_t PrevFrom(size_t from) const {
    for (size_t w = from / 64 + 1; w-- > 0;) {
      uint64_t m = words[w];
      if (w == from / 64 && from % 64 != 63) m &= (uint64_t{2} << (from % 64)) - 1;
      if (m != 0) return (w * 64) + 63 - static_cast<size_t>(__builtin_clzll(m));
    }
    return N;
  }
};

}  // namespace jsmalloc
