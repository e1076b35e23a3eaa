/* bench-launch: runs one workload process and measures it for bench/run.
 *
 *   bench-launch [--preload LIB] [--timeout SECONDS] -- PROGRAM [ARGS...]
 *
 * Forks, sets LD_PRELOAD=LIB in the child only (none if --preload is absent or empty),
 * execs PROGRAM, waits for it with wait4 and writes one line to file descriptor 3:
 *
 *   wall_ns=<n> maxrss_kb=<n> utime_us=<n> stime_us=<n> status=exit:<code>|signal:<n> timed_out=<0|1>
 *
 * Why a launcher at all: Linux carries a process's memory high-water mark across exec
 * into ru_maxrss, so a workload spawned straight from the Python runner (25 MB
 * resident) could never report a peak below the runner's. Forked from this small
 * program, its ru_maxrss is its own (plus about 1 MB of this launcher's).
 * On timeout the child is killed with SIGKILL and timed_out=1 is reported.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t g_timed_out = 0;
static volatile pid_t g_child = 0;

static void on_alarm(int sig) {
  (void)sig;
  g_timed_out = 1;
  if (g_child > 0) kill(g_child, SIGKILL);
}

static long long now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int usage(void) {
  fprintf(stderr, "usage: bench-launch [--preload LIB] [--timeout SECONDS] -- PROGRAM [ARGS...]\n");
  return 125;
}

int main(int argc, char** argv) {
  const char* preload = NULL;
  double timeout = 0;
  int i = 1;
  for (; i < argc; ++i) {
    if (strcmp(argv[i], "--") == 0) {
      ++i;
      break;
    }
    if (i + 1 >= argc) return usage();
    if (strcmp(argv[i], "--preload") == 0) {
      preload = argv[++i];
    } else if (strcmp(argv[i], "--timeout") == 0) {
      char* end = NULL;
      const char* v = argv[++i];
      errno = 0;
      timeout = strtod(v, &end);
      if (*v == '\0' || *end != '\0' || errno != 0 || !(timeout >= 0)) {
        fprintf(stderr, "bench-launch: bad --timeout %s (want seconds, 0 or more)\n", v);
        return 125;
      }
    } else {
      return usage();
    }
  }
  if (i >= argc) return usage();
  char** child_argv = argv + i;

  /* The report goes to fd 3 if the runner opened it, else to stderr. */
  int report_fd = 3;
  if (fcntl(report_fd, F_GETFD) < 0) report_fd = STDERR_FILENO;
  else fcntl(report_fd, F_SETFD, FD_CLOEXEC); /* not inherited by the workload */

  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_alarm; /* no SA_RESTART: wait4 returns EINTR, then we wait again */
  sigaction(SIGALRM, &sa, NULL);

  const long long t0 = now_ns();
  const pid_t pid = fork();
  if (pid < 0) {
    perror("bench-launch: fork");
    return 126;
  }
  if (pid == 0) {
    if (preload != NULL && preload[0] != '\0') {
      setenv("LD_PRELOAD", preload, 1);
    } else {
      unsetenv("LD_PRELOAD");
    }
    execv(child_argv[0], child_argv);
    fprintf(stderr, "bench-launch: cannot run %s: %s\n", child_argv[0], strerror(errno));
    _exit(127);
  }
  g_child = pid;
  if (timeout > 0) {
    struct itimerval it;
    memset(&it, 0, sizeof(it));
    it.it_value.tv_sec = (time_t)timeout;
    it.it_value.tv_usec = (suseconds_t)((timeout - (double)(time_t)timeout) * 1e6);
    if (it.it_value.tv_sec == 0 && it.it_value.tv_usec == 0) it.it_value.tv_usec = 1;
    setitimer(ITIMER_REAL, &it, NULL);
  }
  int status = 0;
  struct rusage ru;
  for (;;) {
    const pid_t r = wait4(pid, &status, 0, &ru);
    if (r == pid) break;
    if (r < 0 && errno == EINTR) continue;
    perror("bench-launch: wait4");
    return 126;
  }
  const long long wall = now_ns() - t0;
  char st[64];
  if (WIFEXITED(status)) {
    snprintf(st, sizeof(st), "exit:%d", WEXITSTATUS(status));
  } else if (WIFSIGNALED(status)) {
    snprintf(st, sizeof(st), "signal:%d", WTERMSIG(status));
  } else {
    snprintf(st, sizeof(st), "unknown:%d", status);
  }
  dprintf(report_fd,
          "wall_ns=%lld maxrss_kb=%ld utime_us=%lld stime_us=%lld status=%s timed_out=%d\n",
          wall, ru.ru_maxrss, (long long)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec,
          (long long)ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec, st, (int)g_timed_out);
  return 0;
}
