// The secure library's canary (secure.cpp): the bytes after a small block's request, up
// to 64 of them and at most to the tag, are checked at free. Every one of those bytes
// is looked at, whatever the canary's length (shorter than a word, a word, several
// words ending in an overlapping one), and none of the request's bytes is. Each case
// runs in a child of its own, which the check kills; a fork, not a death test, so that
// over a thousand cases take a second. Nothing here in the default build, which has no canary.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <string>
#include <vector>

#include "secure.h"
#include "size_class.h"
#include "test_env.h"

namespace jsmalloc {
namespace {

#if defined(JSMALLOC_SECURE)

// Where the canary after a request of `size` ends (secure.cpp's CanaryEnd).
size_t CanaryEndOf(size_t size) {
  const size_t tag = kClasses[SizeToClass(size + kSecureTagBytes)].size - kSecureTagBytes;
  return size + 64 < tag ? size + 64 : tag;
}

// In a child: a fresh block of `size`, its byte at `offset` flipped, then freed. Whether
// the child aborted with "jsmalloc: heap overflow" (otherwise it exits 0).
bool FlipSeenAtFree(size_t size, size_t offset) {
  int out[2];
  if (pipe(out) != 0) return false;
  const pid_t pid = fork();
  if (pid < 0) {
    ADD_FAILURE() << "fork failed";
    return false;
  }
  if (pid == 0) {
    dup2(out[1], 2);
    close(out[0]);
    auto* p = static_cast<volatile char*>(js_malloc(size));
    p[offset] = static_cast<char>(p[offset] ^ 0x01);
    js_free(const_cast<char*>(p));
    _exit(0);
  }
  close(out[1]);
  std::string said;
  char buf[256];
  for (ssize_t n; (n = read(out[0], buf, sizeof buf)) > 0;)
    said.append(buf, static_cast<size_t>(n));
  close(out[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT &&
         said.find("jsmalloc: heap overflow") != std::string::npos;
}

std::vector<size_t> Sizes() {
  std::vector<size_t> sizes;
  for (size_t s = 1; s <= 100; ++s) sizes.push_back(s);
  for (size_t s : {255, 1000, 1025, 2049, 5000, 20000}) sizes.push_back(s);
  return sizes;
}

TEST(SecureCanary, EveryCanaryByteIsCheckedAtFree) {
  testing::EnsureAllocator();
  size_t cases = 0;
  for (size_t size : Sizes()) {
    for (size_t offset = size; offset < CanaryEndOf(size); ++offset, ++cases)
      EXPECT_TRUE(FlipSeenAtFree(size, offset)) << "size " << size << ", byte " << offset;
  }
  EXPECT_GT(cases, 1000u);  // lengths 0..7, 8 and past a word all occur above
}

TEST(SecureCanary, TheRequestsLastByteIsNotTheCanarys) {
  testing::EnsureAllocator();
  for (size_t size : Sizes()) EXPECT_FALSE(FlipSeenAtFree(size, size - 1)) << "size " << size;
}

// realloc within the object rewrites the canary after the new request. Where it is
// shorter than a word, the word it ends has the request's last bytes in it: they keep
// the program's data.
TEST(SecureCanary, AReallocInPlaceKeepsTheBytesBesideAShortCanary) {
  testing::EnsureAllocator();
  for (size_t size = 90; size <= 104; ++size) {  // 100-byte blocks: class 112, tag at 104
    auto* p = static_cast<unsigned char*>(js_malloc(100));
    for (size_t i = 0; i < 100; ++i) p[i] = static_cast<unsigned char>(0xa0 + i);
    auto* q = static_cast<unsigned char*>(js_realloc(p, size));
    ASSERT_EQ(q, p) << "size " << size;  // stayed: the test is of the in-place rewrite
    for (size_t i = 0; i < (size < 100 ? size : 100); ++i)
      ASSERT_EQ(q[i], static_cast<unsigned char>(0xa0 + i)) << "size " << size << ", byte " << i;
    js_free(q);  // the new canary is whole: no report
  }
}

#endif  // JSMALLOC_SECURE

}  // namespace
}  // namespace jsmalloc
