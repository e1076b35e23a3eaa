#include "frontend/thread_cache.h"

#include "free_list.h"

#include <gtest/gtest.h>

#include <pthread.h>

#include <cstring>
#include <thread>
#include <vector>

#include "middle/middle.h"
#include "size_class.h"
#include "test_env.h"

namespace jsmalloc {
namespace {

size_t ObjectsOut(size_t cls) {
  return g_central[cls].GetStats().objects_out - g_transfer[cls].count();
}

TEST(ThreadCache, StartsAtTheSharedEmptyCache) {
  testing::EnsureAllocator();
  std::thread([] {
    EXPECT_EQ(tl_cache, &g_empty_cache);
    void* p = js_malloc(40);
    EXPECT_NE(tl_cache, &g_empty_cache);
    js_free(p);
  }).join();
  for (size_t c = 0; c < kNumClasses; ++c) {
    EXPECT_EQ(g_empty_cache.head[c], nullptr);
    EXPECT_EQ(g_empty_cache.budget[c], 0);
  }
}

TEST(ThreadCache, LifoReuse) {
  testing::EnsureAllocator();
  void* a = js_malloc(100);
  void* b = js_malloc(100);
  js_free(a);
  js_free(b);
  EXPECT_EQ(js_malloc(100), b);
  EXPECT_EQ(js_malloc(100), a);
  js_free(a);
  js_free(b);
}

TEST(ThreadCache, BudgetInvariantHolds) {
  testing::EnsureAllocator();
  const size_t cls = SizeToClass(64);
  std::vector<void*> v;
  for (int i = 0; i < 5000; ++i) v.push_back(js_malloc(64));
  for (void* p : v) js_free(p);
  ThreadCache* tc = tl_cache;
  size_t len = 0;
  for (void* p = tc->head[cls]; p != nullptr; p = ListNext(p)) ++len;
  EXPECT_EQ(static_cast<int64_t>(tc->max_length[cls]) - tc->budget[cls], static_cast<int64_t>(len));
  EXPECT_LE(len * 64, size_t{4} << 20);  // the cache limit
}

TEST(ThreadCache, ExitingThreadReturnsEverything) {
  testing::EnsureAllocator();
  const size_t cls = SizeToClass(200);
  size_t before = ObjectsOut(cls);
  size_t caches = ThreadCacheCount();
  std::thread([] {
    std::vector<void*> v;
    for (int i = 0; i < 3000; ++i) v.push_back(js_malloc(200));
    for (void* p : v) js_free(p);
    js_free(js_malloc(200));  // leaves a partly used run behind too
  }).join();
  EXPECT_EQ(ThreadCacheCount(), caches);
  EXPECT_EQ(ObjectsOut(cls), before);
}

TEST(ThreadCache, CrossThreadFreesFlowBack) {
  testing::EnsureAllocator();
  const size_t cls = SizeToClass(1000);
  ThreadCacheFlushCurrent();
  size_t before = ObjectsOut(cls);
  std::vector<void*> v;
  for (int i = 0; i < 2000; ++i) v.push_back(js_malloc(1000));
  ThreadCacheFlushCurrent();  // what this thread cached beyond the 2000 goes back
  EXPECT_EQ(ObjectsOut(cls), before + v.size());
  std::thread([&] {
    for (void* p : v) js_free(p);
  }).join();
  EXPECT_EQ(ObjectsOut(cls), before);
}

}  // namespace
}  // namespace jsmalloc

namespace jsmalloc {
namespace {

pthread_key_t g_late_key;
void* g_late_block = nullptr;

// Runs after jsmalloc's own key destructor (keys run in creation order), when the
// thread has no cache any more: allocations go straight to the middle tier.
void LateDestructor(void*) {
  void* p = js_malloc(3000);
  memset(p, 1, 3000);
  g_late_block = p;
  js_free(js_malloc(3000));
}

TEST(ThreadCache, AllocationsAfterTheCacheIsGoneDoNotLeak) {
  testing::EnsureAllocator();
  const size_t cls = SizeToClass(3000);
  ThreadCacheFlushCurrent();
  size_t before = ObjectsOut(cls);
  ASSERT_EQ(pthread_key_create(&g_late_key, LateDestructor), 0);
  std::thread([] {
    pthread_setspecific(g_late_key, reinterpret_cast<void*>(1));
    js_free(js_malloc(3000));  // creates this thread's cache
  }).join();
  ASSERT_NE(g_late_block, nullptr);
  EXPECT_EQ(ObjectsOut(cls), before + 1);  // only the block still held
  js_free(g_late_block);
  ThreadCacheFlushCurrent();
  EXPECT_EQ(ObjectsOut(cls), before);
  pthread_key_delete(g_late_key);
}

}  // namespace
}  // namespace jsmalloc
