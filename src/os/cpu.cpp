#include "os/cpu.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/membarrier.h>
#include <sched.h>
#include <sys/rseq.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace jsmalloc::os {

namespace {

// The highest CPU number in a cpulist ("0-3,8,10-11\n"), or -1.
int64_t LastCpuInList(const char* s) {
  int64_t last = -1;
  while (*s != 0) {
    if (*s < '0' || *s > '9') {
      ++s;
      continue;
    }
    int64_t n = 0;
    while (*s >= '0' && *s <= '9') n = n * 10 + (*s++ - '0');
    if (n > last) last = n;
  }
  return last;
}

int64_t LastPossibleCpu() {
  int fd = open("/sys/devices/system/cpu/possible", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  char buf[256];
  ssize_t n = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  if (n <= 0) return -1;
  buf[n] = 0;
  return LastCpuInList(buf);
}

int64_t LastCpuInAffinity() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return -1;
  for (int64_t cpu = CPU_SETSIZE - 1; cpu >= 0; --cpu) {
    if (CPU_ISSET(cpu, &set)) return cpu;
  }
  return -1;
}

}  // namespace

uint32_t PossibleCpus() {
  int saved = errno;
  int64_t last = LastPossibleCpu();
  int64_t in_mask = LastCpuInAffinity();
  if (in_mask > last) last = in_mask;
  errno = saved;
  return static_cast<uint32_t>(last + 1);
}

ptrdiff_t GlibcRseqOffset() {
  return __rseq_offset;
}

uint32_t GlibcRseqSize() {
  return __rseq_size;
}

int RseqRegister(void* area, uint32_t size) {
  int saved = errno;
  int rc = syscall(SYS_rseq, area, size, 0, kRseqSignature) == 0 ? 0 : errno;
  errno = saved;
  return rc;
}

int RseqFenceRegister() {
  int saved = errno;
  int rc = syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ, 0, 0) == 0
               ? 0
               : errno;
  errno = saved;
  return rc;
}

int RseqFence(uint32_t cpu) {
  int saved = errno;
  int rc = syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ, MEMBARRIER_CMD_FLAG_CPU,
                   static_cast<int>(cpu)) == 0
               ? 0
               : errno;
  errno = saved;
  return rc;
}

}  // namespace jsmalloc::os
