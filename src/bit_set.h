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
  bool Any() const {
    uint64_t any = 0;
    for (uint64_t w : words) any |= w;
    return any != 0;
  }
  // Counted in the word, not with __builtin_popcountll: the baseline x86-64 the library
  // is built for has no popcnt instruction, and the builtin is then a call into libgcc
  // (3 % of bench-remote at one thread, from the cache sizing's slow paths).
  int Count() const {
    int n = 0;
    for (uint64_t w : words) {
      w -= (w >> 1) & 0x5555555555555555;
      w = (w & 0x3333333333333333) + ((w >> 2) & 0x3333333333333333);
      w = (w + (w >> 4)) & 0x0F0F0F0F0F0F0F0F;
      n += static_cast<int>((w * 0x0101010101010101) >> 56);
    }
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
