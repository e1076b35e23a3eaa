// A C++ program using the installed jsmalloc through find_package(jsmalloc).
#include <cstddef>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "proof.h"


namespace {

// operator new and delete must come from jsmalloc too when it replaces malloc.
int ProveNewDelete(bool replaces) {
  int failures = 0;
  for (const char* symbol : {"_Znwm", "_ZdlPv", "_Znam", "_ZdaPv"}) {
    if (consumer_resolves_to_jsmalloc(symbol) != static_cast<int>(replaces)) {
      std::printf("C++ consumer: %s %s resolved to jsmalloc\n", symbol, replaces ? "is not" : "is");
      failures++;
    }
  }
  if (replaces) {
    for (std::size_t size : {8u, 200u, 5000u, 100000u}) {
      std::unique_ptr<char[]> block(new char[size]);
      if (js_usable_size(block.get()) < size ||
          js_usable_size(block.get()) != malloc_usable_size(block.get())) {
        std::printf("C++ consumer: new char[%zu] is not a jsmalloc block\n", size);
        failures++;
      }
    }
  }
  // Some ordinary C++ churn through new/delete.
  std::vector<std::string> words;
  for (int i = 0; i < 20000; i++) words.push_back(std::string(static_cast<std::size_t>(i % 97), 'x'));
  std::size_t total = 0;
  for (const std::string& w : words) total += w.size();
  if (total != 959289) {
    std::printf("C++ consumer: string churn gave %zu\n", total);
    failures++;
  }
  return failures;
}

}  // namespace

int main() {
  int failures = consumer_prove("C++ consumer", CONSUMER_REPLACES_MALLOC, CONSUMER_JSMALLOC_IN_EXECUTABLE);
  failures += ProveNewDelete(CONSUMER_REPLACES_MALLOC != 0);
  if (failures != 0) return 1;
  std::puts("C++ consumer: ok");
  return 0;
}
