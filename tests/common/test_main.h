// The test executables' main(): runs GoogleTest, or — when started as
// `<exe> --jstest-child=<name>` — runs the child workload registered under <name> and
// exits with its return value. Tests use that to observe a fresh process (its
// environment, what it prints at exit).
#pragma once

#include <string>
#include <vector>

namespace jstest {

using ChildMain = int (*)();

// Registers a child workload; use through JSTEST_CHILD_MAIN.
struct ChildRegistrar {
  ChildRegistrar(const char* name, ChildMain fn);
};

#define JSTEST_CHILD_MAIN(name)                                                               \
  static int JsTestChild_##name();                                                            \
  static ::jstest::ChildRegistrar js_test_child_registrar_##name(#name, &JsTestChild_##name); \
  static int JsTestChild_##name()

struct ChildResult {
  int wait_status = -1;  // as from waitpid
  std::string err;       // everything the child wrote to stderr
};

// Runs this executable as child `name`, with the current environment plus `set`
// ("NAME=value" entries) and without the variables named in `unset`.
ChildResult RunSelfAsChild(const char* name, const std::vector<std::string>& set,
                           const std::vector<std::string>& unset);

}  // namespace jstest
