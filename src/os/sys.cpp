#include "os/sys.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

extern "C" char** environ;

namespace jsmalloc::os {

namespace {
void WriteAll(int fd, const char* text, size_t len);
}  // namespace

void WriteStderr(const char* text, size_t len) {
  int saved = errno;
  WriteAll(2, text, len);
  errno = saved;
}

namespace {
int g_kept_stderr = -1;
dev_t g_stderr_dev = 0;
ino_t g_stderr_ino = 0;

bool IsStderrFile(int fd) {
  struct stat st;
  return fd >= 0 && fstat(fd, &st) == 0 && st.st_dev == g_stderr_dev && st.st_ino == g_stderr_ino;
}

void WriteAll(int fd, const char* text, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, text, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    text += n;
    len -= static_cast<size_t>(n);
  }
}
}  // namespace

void KeepStderr() {
  int saved = errno;
  struct stat st;
  if (g_kept_stderr < 0 && fstat(2, &st) == 0) {
    g_stderr_dev = st.st_dev;
    g_stderr_ino = st.st_ino;
    g_kept_stderr = fcntl(2, F_DUPFD_CLOEXEC, 100);
  }
  errno = saved;
}

void WriteStderrAtExit(const char* text, size_t len) {
  int saved = errno;
  int fd = 2;
  if (g_kept_stderr >= 0 && !IsStderrFile(2) && IsStderrFile(g_kept_stderr)) fd = g_kept_stderr;
  WriteAll(fd, text, len);
  errno = saved;
}

void Abort() {
  abort();
}

void FutexWait(uint32_t* addr, uint32_t expected) {
  int saved = errno;
  syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, expected, nullptr, nullptr, 0);
  errno = saved;
}

void FutexWake(uint32_t* addr, int count) {
  int saved = errno;
  syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, count, nullptr, nullptr, 0);
  errno = saved;
}

void Yield() {
  sched_yield();
}

void SleepNanos(uint64_t ns) {
  int saved = errno;
  struct timespec left;
  left.tv_sec = static_cast<time_t>(ns / 1000000000u);
  left.tv_nsec = static_cast<long>(ns % 1000000000u);
  // On EINTR clock_nanosleep leaves what remains in `left`.
  while (clock_nanosleep(CLOCK_MONOTONIC, 0, &left, &left) == EINTR) {
  }
  errno = saved;
}

int StartDaemonThread(void* (*fn)(void*)) {
  int saved = errno;
  pthread_attr_t attr;
  int rc = pthread_attr_init(&attr);
  if (rc != 0) return rc;
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  // The new thread inherits the creator's mask: blocked here, it has no window in which
  // a signal could reach it. (glibc keeps its own internal signals usable.)
  sigset_t all;
  sigset_t old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pthread_t thread;
  rc = pthread_create(&thread, &attr, fn, nullptr);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  pthread_attr_destroy(&attr);
  errno = saved;
  return rc;
}

void NameThisThread(const char* name) {
  int saved = errno;
  pthread_setname_np(pthread_self(), name);  // prctl(PR_SET_NAME) for the caller
  errno = saved;
}

namespace {
uint64_t ClockNanos(clockid_t clock) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}
}  // namespace

uint64_t NowNanos() {
  return ClockNanos(CLOCK_MONOTONIC);
}

uint64_t CoarseNowNanos() {
  return ClockNanos(CLOCK_MONOTONIC_COARSE);
}

uint64_t RandomSeed() {
  int saved = errno;
  uint64_t seed = 0;
  if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != sizeof(seed)) {
    seed = NowNanos() ^ (reinterpret_cast<uintptr_t>(&seed) << 16) ^
           static_cast<uint64_t>(getpid()) << 40;
  }
  errno = saved;
  // Mix so that weak fallbacks still spread over all bits (splitmix64 finaliser).
  seed += 0x9e3779b97f4a7c15ull;
  seed = (seed ^ (seed >> 30)) * 0xbf58476d1ce4e5b9ull;
  seed = (seed ^ (seed >> 27)) * 0x94d049bb133111ebull;
  return seed ^ (seed >> 31);
}

size_t ResidentBytes() {
  int saved = errno;
  int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    errno = saved;
    return 0;
  }
  char buf[128];
  ssize_t n = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  errno = saved;
  if (n <= 0) return 0;
  buf[n] = 0;
  const char* s = buf;
  while (*s && *s != ' ') ++s;  // skip total size
  while (*s == ' ') ++s;
  size_t pages = 0;
  while (*s >= '0' && *s <= '9') pages = pages * 10 + static_cast<size_t>(*s++ - '0');
  return pages * static_cast<size_t>(sysconf(_SC_PAGESIZE));
}

int ProcessId() {
  return getpid();
}

const char* GetEnv(const char* name) {
  if (environ == nullptr) return nullptr;
  size_t len = strlen(name);
  for (char** e = environ; *e != nullptr; ++e) {
    if (strncmp(*e, name, len) == 0 && (*e)[len] == '=') return *e + len + 1;
  }
  return nullptr;
}

const char* EnvEntry(size_t i) {
  return environ == nullptr ? nullptr : environ[i];
}

}  // namespace jsmalloc::os

namespace jsmalloc::os {

int OpenForWrite(const char* path) {
  int fd;
  do {
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  } while (fd < 0 && errno == EINTR);
  return fd;
}

int OpenForRead(const char* path) {
  int fd;
  do {
    fd = open(path, O_RDONLY | O_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  return fd;
}

bool WriteFile(int fd, const void* data, size_t len) {
  const char* p = static_cast<const char*>(data);
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

long ReadFile(int fd, void* data, size_t len) {
  ssize_t n;
  do {
    n = read(fd, data, len);
  } while (n < 0 && errno == EINTR);
  return static_cast<long>(n);
}

void CloseFile(int fd) {
  int saved = errno;
  close(fd);
  errno = saved;
}

int LastError() {
  return errno;
}

void SetLastError(int e) {
  errno = e;
}

bool CatchSignal(int sig, void (*handler)(int)) {
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = handler;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  return sig > 0 && sig < NSIG && sig != SIGKILL && sig != SIGSTOP &&
         sigaction(sig, &sa, nullptr) == 0;
}

}  // namespace jsmalloc::os
