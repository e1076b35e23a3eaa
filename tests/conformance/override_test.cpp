// The whole malloc API and every C++ operator new/delete resolve to jsmalloc (linked
// statically, or preloaded), and blocks move freely between the C API and the js_* API.
#include <dlfcn.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "alloc_fns.h"
#include "test_util.h"

namespace fn = jstest::fn;
using jstest::kKiB;
using jstest::kMiB;

namespace {

const char* const kOverriddenSymbols[] = {
    "malloc", "free", "calloc", "realloc", "reallocarray", "memalign", "posix_memalign",
    "aligned_alloc", "valloc", "pvalloc", "malloc_usable_size", "malloc_trim", "mallinfo",
    "mallinfo2", "malloc_stats", "malloc_info", "__libc_malloc", "__libc_free", "__libc_calloc",
    "__libc_realloc", "__libc_memalign", "free_sized", "free_aligned_sized",
    // operator new: plain, array, nothrow, aligned, aligned nothrow
    "_Znwm", "_Znam", "_ZnwmRKSt9nothrow_t", "_ZnamRKSt9nothrow_t", "_ZnwmSt11align_val_t",
    "_ZnamSt11align_val_t", "_ZnwmSt11align_val_tRKSt9nothrow_t",
    "_ZnamSt11align_val_tRKSt9nothrow_t",
    // operator delete: plain, array, sized, nothrow, aligned, sized aligned, aligned nothrow
    "_ZdlPv", "_ZdaPv", "_ZdlPvm", "_ZdaPvm", "_ZdlPvRKSt9nothrow_t", "_ZdaPvRKSt9nothrow_t",
    "_ZdlPvSt11align_val_t", "_ZdaPvSt11align_val_t", "_ZdlPvmSt11align_val_t",
    "_ZdaPvmSt11align_val_t", "_ZdlPvSt11align_val_tRKSt9nothrow_t",
    "_ZdaPvSt11align_val_tRKSt9nothrow_t"};

// The object that holds jsmalloc: the executable when linked with libjsmalloc.a, the
// preloaded libjsmalloc.so otherwise (then the executable's own js_* are forwarders,
// tests/common/preload_shim.cpp, and the real js_malloc is the next definition).
const void* JsmallocObjectBase(std::string* name) {
  void* js = dlsym(RTLD_NEXT, "js_malloc");
  if (js == nullptr) js = reinterpret_cast<void*>(&::js_malloc);
  Dl_info info;
  if (dladdr(js, &info) == 0) return nullptr;
  *name = info.dli_fname != nullptr ? info.dli_fname : "?";
  return info.dli_fbase;
}

class OverrideSymbol : public testing::TestWithParam<const char*> {};

}  // namespace

// The definition the dynamic linker binds `symbol` to lives in the same object as
// jsmalloc (the test executable when linked with libjsmalloc.a, libjsmalloc.so when
// preloaded), not in libc or libstdc++.
TEST_P(OverrideSymbol, ResolvesToJsmalloc) {
  const char* symbol = GetParam();
  std::string js_object;
  const void* js_base = JsmallocObjectBase(&js_object);
  ASSERT_NE(js_base, nullptr);
  void* sym = dlsym(RTLD_DEFAULT, symbol);
  ASSERT_NE(sym, nullptr) << symbol << " not found";
  Dl_info info;
  ASSERT_NE(dladdr(sym, &info), 0);
  EXPECT_EQ(info.dli_fbase, js_base)
      << symbol << " resolves to " << (info.dli_fname ? info.dli_fname : "?") << ", jsmalloc is in "
      << js_object;
}

INSTANTIATE_TEST_SUITE_P(Override, OverrideSymbol, testing::ValuesIn(kOverriddenSymbols),
                         [](const testing::TestParamInfo<const char*>& info) {
                           return std::string(info.param);
                         });

namespace {

struct CAllocator {
  const char* name;
  void* (*alloc)(size_t);
};

const CAllocator kCAllocators[] = {
    {"malloc", [](size_t n) { return fn::malloc_(n); }},
    {"calloc", [](size_t n) { return fn::calloc_(1, n); }},
    {"realloc", [](size_t n) { return fn::realloc_(nullptr, n); }},
    {"realloc_grown", [](size_t n) { return fn::realloc_(fn::malloc_(8), n); }},
    {"reallocarray", [](size_t n) { return fn::reallocarray_(nullptr, n, 1); }},
    {"memalign", [](size_t n) { return fn::memalign_(64, n); }},
    {"posix_memalign",
     [](size_t n) {
       void* p = nullptr;
       return fn::posix_memalign_(&p, 128, n) == 0 ? p : nullptr;
     }},
    {"aligned_alloc", [](size_t n) { return fn::aligned_alloc_(256, n); }},
    {"valloc", [](size_t n) { return fn::valloc_(n); }},
    {"pvalloc", [](size_t n) { return fn::pvalloc_(n); }},
    {"libc_malloc", [](size_t n) { return fn::libc_malloc_(n); }},
    {"libc_calloc", [](size_t n) { return fn::libc_calloc_(n, 1); }},
    {"libc_realloc", [](size_t n) { return fn::libc_realloc_(nullptr, n); }},
    {"libc_memalign", [](size_t n) { return fn::libc_memalign_(4096, n); }},
};

class OverrideAllocator : public testing::TestWithParam<CAllocator> {};

}  // namespace

// A block from each C entry point is a jsmalloc block: js_usable_size knows it and
// js_free accepts it (a foreign block makes js_free abort with "invalid free").
TEST_P(OverrideAllocator, BlockOwnedByJsmalloc) {
  for (size_t n : {size_t{24}, size_t{5000}, 300 * kKiB, jstest::kHugeMin + 1}) {
    void* p = GetParam().alloc(n);
    ASSERT_NE(p, nullptr) << GetParam().name << "(" << n << ")";
    EXPECT_GE(fn::js_usable_size_(p), n);
    EXPECT_EQ(fn::js_usable_size_(p), fn::malloc_usable_size_(p));
    memset(p, 0x33, n);
    fn::js_free_(p);
  }
}

INSTANTIATE_TEST_SUITE_P(Override, OverrideAllocator, testing::ValuesIn(kCAllocators),
                         [](const testing::TestParamInfo<CAllocator>& info) {
                           return std::string(info.param.name);
                         });

TEST(Override, FreeAcceptsPrefixedBlocks) {
  for (size_t n : {size_t{24}, size_t{5000}, 300 * kKiB, jstest::kHugeMin + 1}) {
    void* p = fn::js_malloc_(n);
    ASSERT_NE(p, nullptr);
    memset(p, 1, n);
    fn::free_(p);
    p = fn::js_malloc_(n);
    ASSERT_NE(p, nullptr);
    fn::libc_free_(p);
    p = fn::js_aligned_alloc_(4096, n);
    ASSERT_NE(p, nullptr);
    p = fn::realloc_(p, n + 10);
    ASSERT_NE(p, nullptr);
    EXPECT_GE(fn::js_usable_size_(p), n + 10);
    fn::free_(p);
  }
}

// C23's sized frees. glibc 2.36 declares neither, so they are looked up by name; the
// freed block is the next one of its size handed out (the thread cache is LIFO).
TEST(Override, C23SizedFreesFree) {
  using FreeSized = void (*)(void*, size_t);
  using FreeAlignedSized = void (*)(void*, size_t, size_t);
  auto free_sized = reinterpret_cast<FreeSized>(dlsym(RTLD_DEFAULT, "free_sized"));
  auto free_aligned_sized =
      reinterpret_cast<FreeAlignedSized>(dlsym(RTLD_DEFAULT, "free_aligned_sized"));
  ASSERT_NE(free_sized, nullptr);
  ASSERT_NE(free_aligned_sized, nullptr);
  void* p = fn::malloc_(100);
  ASSERT_NE(p, nullptr);
  free_sized(p, 100);
  void* q = fn::malloc_(100);
  EXPECT_EQ(q, p);
  fn::free_(q);
  p = fn::aligned_alloc_(64, 192);
  ASSERT_NE(p, nullptr);
  free_aligned_sized(p, 64, 192);
  q = fn::aligned_alloc_(64, 192);
  EXPECT_EQ(q, p);
  fn::free_(q);
  for (size_t n : {5000 * size_t{1}, 300 * kKiB, jstest::kHugeMin + 1}) {
    p = fn::malloc_(n);
    ASSERT_NE(p, nullptr);
    free_sized(p, n);
    p = fn::aligned_alloc_(4096, n);
    ASSERT_NE(p, nullptr);
    free_aligned_sized(p, 4096, n);
  }
  free_sized(nullptr, 0);
  free_aligned_sized(nullptr, 64, 0);
}

TEST(Override, OperatorNewOwnedByJsmalloc) {
  for (size_t n : {size_t{24}, size_t{5000}, 300 * kKiB}) {
    void* p = fn::new_(n);
    EXPECT_GE(fn::js_usable_size_(p), n);
    fn::delete_(p);
    p = fn::new_aligned_(n, std::align_val_t{512});
    EXPECT_GE(fn::js_usable_size_(p), n);
    fn::delete_aligned_(p, std::align_val_t{512});
  }
}

namespace {

// Runs fn with file descriptor 2 redirected to a memory file; returns what it wrote.
template <class F>
std::string CaptureStderr(F fn) {
  fflush(stderr);
  int mem = memfd_create("stderr-capture", MFD_CLOEXEC);
  if (mem < 0) return "<memfd_create failed>";
  int saved = dup(2);
  dup2(mem, 2);
  fn();
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  std::string out;
  char buf[4096];
  ssize_t n;
  off_t off = 0;
  while ((n = pread(mem, buf, sizeof(buf), off)) > 0) {
    out.append(buf, static_cast<size_t>(n));
    off += n;
  }
  close(mem);
  return out;
}

}  // namespace

TEST(Override, MallocStatsPrintsJsmallocStatistics) {
  void* p = fn::malloc_(300 * kKiB);
  std::string out = CaptureStderr([] { fn::malloc_stats_(); });
  fn::free_(p);
  EXPECT_FALSE(out.empty()) << "malloc_stats printed nothing";
  // glibc's own malloc_stats prints per-arena lines; jsmalloc's must not be that.
  EXPECT_EQ(out.find("Arena 0:"), std::string::npos) << out;
  EXPECT_EQ(out.find("system bytes"), std::string::npos) << out;
}

TEST(Override, Mallinfo2ReportsLiveBytes) {
  auto in_use = [] {
    struct mallinfo2 mi = fn::mallinfo2_();
    return mi.uordblks + mi.hblkhd;
  };
  size_t before = in_use();
  std::vector<void*> ps;
  for (int i = 0; i < 256; ++i) {
    ps.push_back(fn::malloc_(64 * kKiB));
    ASSERT_NE(ps.back(), nullptr);
    memset(ps.back(), 1, 64 * kKiB);
  }
  ps.push_back(fn::malloc_(jstest::kHugeSize));
  ASSERT_NE(ps.back(), nullptr);
  size_t during = in_use();
  EXPECT_GE(during, before + 16 * kMiB + jstest::kHugeSize)
      << "mallinfo2 uordblks + hblkhd went from " << before << " to " << during;
  for (void* p : ps) fn::free_(p);
}

TEST(Override, MallocTrimReleasesFreeMemory) {
  jstest::DisableTransparentHugePages();
  size_t base = jstest::RssBytes();
  std::vector<void*> ps;
  for (int i = 0; i < 32; ++i) ps.push_back(fn::malloc_(kMiB));         // large
  for (int i = 0; i < 32 * 1024; ++i) ps.push_back(fn::malloc_(kKiB));  // small
  for (void* p : ps) {
    ASSERT_NE(p, nullptr);
    memset(p, 0x5D, fn::malloc_usable_size_(p));
  }
  for (void* p : ps) fn::free_(p);
  size_t before_trim = jstest::RssBytes();
  int released = fn::malloc_trim_(0);
  size_t after_trim = jstest::RssBytes();
  EXPECT_LT(after_trim, base + 16 * kMiB) << "RSS: base " << base << ", after freeing "
                                          << before_trim << ", after malloc_trim " << after_trim;
  if (before_trim > base + 32 * kMiB) {
    EXPECT_EQ(released, 1) << "malloc_trim released memory but returned 0";
  }
}

TEST(Override, MallocInfoWritesReport) {
  char* text = nullptr;
  size_t len = 0;
  FILE* f = open_memstream(&text, &len);
  ASSERT_NE(f, nullptr);
  int rc = malloc_info(0, f);
  fclose(f);
  EXPECT_EQ(rc, 0);
  EXPECT_GT(len, 0u) << "malloc_info wrote nothing";
  fn::free_(text);
}
