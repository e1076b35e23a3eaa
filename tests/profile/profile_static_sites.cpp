// Allocation sites for the profiler with jsmalloc linked into the program (libjsmalloc.a)
// rather than preloaded: each function below keeps 32 MiB through a different entry
// point, and the profile must name each one as the site, not the allocator's function
// it went through (jsmalloc::Calloc, operator new[], ...).
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

namespace {

constexpr size_t kBlock = 64 << 10;
constexpr int kBlocks = 512;  // 32 MiB a site
std::vector<void*> g_kept;

void Keep(void* p) {
  if (p == nullptr) {
    std::fprintf(stderr, "allocation failed\n");
    std::exit(1);
  }
  std::memset(p, 1, 64);
  g_kept.push_back(p);
}

}  // namespace

__attribute__((noinline)) void by_malloc() {
  for (int i = 0; i < kBlocks; ++i) Keep(std::malloc(kBlock));
}
__attribute__((noinline)) void by_calloc() {
  for (int i = 0; i < kBlocks; ++i) Keep(std::calloc(1, kBlock));
}
__attribute__((noinline)) void by_realloc() {
  for (int i = 0; i < kBlocks; ++i) Keep(std::realloc(std::malloc(16), kBlock));
}
__attribute__((noinline)) void by_new_array() {
  for (int i = 0; i < kBlocks; ++i) Keep(new char[kBlock]);
}
__attribute__((noinline)) void by_aligned_alloc() {
  for (int i = 0; i < kBlocks; ++i) Keep(std::aligned_alloc(256, kBlock));
}

int main() {
  g_kept.reserve(5 * kBlocks);
  by_malloc();
  by_calloc();
  by_realloc();
  by_new_array();
  by_aligned_alloc();
  return 0;  // the blocks stay live: the profile at exit holds them
}
