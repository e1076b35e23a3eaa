/* Run by secure.valgrind under memcheck, linked with libjsmalloc-secure.a: the secure
 * library's guard pages, canaries, zeroing and checks must give memcheck nothing to
 * report on a correct program, and the program's results must be right. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check(int ok, const char* what) {
  if (!ok) fprintf(stderr, "valgrind_program: %s\n", what);
  return ok ? 0 : 1;
}

int main(void) {
  static const size_t sizes[] = {1, 8, 24, 100, 1000, 4096, 70000, 131072, 300000, 5u << 20};
  enum { kCount = sizeof sizes / sizeof sizes[0] };
  void* blocks[kCount];
  int failures = 0;
  for (int round = 0; round < 20; ++round) {
    for (size_t i = 0; i < kCount; ++i) {
      blocks[i] = (round & 1) ? calloc(1, sizes[i]) : malloc(sizes[i]);
      failures += check(blocks[i] != NULL, "allocation failed");
      if (blocks[i] == NULL) return 1;
      if (round & 1) {
        const unsigned char* b = blocks[i];
        for (size_t j = 0; j < sizes[i]; j += 97) failures += check(b[j] == 0, "calloc not zero");
      }
      memset(blocks[i], (int)(i + round), sizes[i]);
    }
    for (size_t i = 0; i < kCount; ++i) {
      unsigned char* q = realloc(blocks[i], sizes[i] * 2 + 1);
      failures += check(q != NULL && q[sizes[i] - 1] == (unsigned char)(i + round), "realloc");
      free(q);
    }
    void* a = aligned_alloc(4096, 10000);
    failures += check(a != NULL && (uintptr_t)a % 4096 == 0, "aligned_alloc");
    free(a);
  }
  if (failures == 0) printf("valgrind_program: ok\n");
  return failures == 0 ? 0 : 1;
}
