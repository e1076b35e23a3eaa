#include "test_main.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <gtest/gtest.h>

extern char** environ;

namespace jstest {
namespace {

struct ChildEntry {
  const char* name;
  ChildMain fn;
};

constexpr int kMaxChildren = 32;
ChildEntry g_children[kMaxChildren];
int g_num_children = 0;

constexpr char kChildFlag[] = "--jstest-child=";

}  // namespace

ChildRegistrar::ChildRegistrar(const char* name, ChildMain fn) {
  if (g_num_children == kMaxChildren) abort();
  g_children[g_num_children++] = ChildEntry{name, fn};
}

ChildResult RunSelfAsChild(const char* name, const std::vector<std::string>& set,
                           const std::vector<std::string>& unset) {
  // Build everything the child needs before fork(), so the child only calls
  // async-signal-safe functions.
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry = *e;
    std::string key = entry.substr(0, entry.find('='));
    bool drop = false;
    for (const auto& u : unset) drop = drop || key == u;
    for (const auto& s : set) drop = drop || key == s.substr(0, s.find('='));
    if (!drop) env_strings.push_back(entry);
  }
  for (const auto& s : set) env_strings.push_back(s);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::string flag = std::string(kChildFlag) + name;
  char exe[] = "/proc/self/exe";
  char* argv[] = {exe, flag.data(), nullptr};

  ChildResult result;
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return result;
  pid_t pid = fork();
  if (pid < 0) return result;
  if (pid == 0) {
    dup2(fds[1], 2);
    execve(exe, argv, envp.data());
    _exit(127);
  }
  close(fds[1]);
  char buf[4096];
  for (;;) {
    ssize_t n = read(fds[0], buf, sizeof(buf));
    if (n > 0) {
      result.err.append(buf, static_cast<size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      break;
    }
  }
  close(fds[0]);
  while (waitpid(pid, &result.wait_status, 0) < 0 && errno == EINTR) {
  }
  return result;
}

}  // namespace jstest

int main(int argc, char** argv) {
  if (argc == 2 && strncmp(argv[1], jstest::kChildFlag, strlen(jstest::kChildFlag)) == 0) {
    const char* name = argv[1] + strlen(jstest::kChildFlag);
    for (int i = 0; i < jstest::g_num_children; ++i) {
      if (strcmp(jstest::g_children[i].name, name) == 0) return jstest::g_children[i].fn();
    }
    fprintf(stderr, "unknown child workload %s\n", name);
    return 125;
  }
  testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
