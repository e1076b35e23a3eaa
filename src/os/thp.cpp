#include "os/thp.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

namespace jsmalloc::os {

ThpSetting TransparentHugepageSetting() {
  int saved = errno;
  int fd = open("/sys/kernel/mm/transparent_hugepage/enabled", O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    errno = saved;
    return ThpSetting::kUnknown;  // no THP support in this kernel
  }
  char buf[128];
  ssize_t n = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  errno = saved;
  if (n <= 0) return ThpSetting::kUnknown;
  buf[n] = 0;
  // The setting in force is the bracketed word: "always [madvise] never".
  const char* open_bracket = buf;
  while (*open_bracket != 0 && *open_bracket != '[') ++open_bracket;
  if (*open_bracket == 0) return ThpSetting::kUnknown;
  switch (open_bracket[1]) {
    case 'a':
      return ThpSetting::kAlways;
    case 'm':
      return ThpSetting::kMadvise;
    case 'n':
      return ThpSetting::kNever;
    default:
      return ThpSetting::kUnknown;
  }
}

void AdviseNoHugepages(void* p, size_t size) {
  int saved = errno;
  madvise(p, size, MADV_NOHUGEPAGE);
  errno = saved;
}

// Debian 12's headers predate it (Linux 6.1).
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif

int CollapseHugepages(void* p, size_t size) {
  int saved = errno;
  int rc = madvise(p, size, MADV_COLLAPSE) == 0 ? 0 : errno;
  errno = saved;
  return rc;
}

bool CollapseSupported() {
  // 0 unknown, 1 yes, 2 no; any thread may ask first, and every answer is the same.
  static constinit int known = 0;
  int k = __atomic_load_n(&known, __ATOMIC_RELAXED);
  if (k == 0) {
    int saved = errno;
    k = madvise(nullptr, 0, MADV_COLLAPSE) == 0 ? 1 : 2;
    errno = saved;
    __atomic_store_n(&known, k, __ATOMIC_RELAXED);
  }
  return k == 1;
}

}  // namespace jsmalloc::os
