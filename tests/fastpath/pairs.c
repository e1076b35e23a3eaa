// malloc(32)+free pairs for counting instructions with callgrind: argv[1] = "tight"
// (malloc then free, repeated) or "batch" (1000 mallocs, then 1000 frees), argv[2] =
// pairs. Run with 0 and with N pairs; the difference divided by N is the cost of one
// pair, start-up cancelled out.
#include <stdlib.h>
#include <string.h>

int main(int argc, char** argv) {
  if (argc != 3) return 2;
  long pairs = atol(argv[2]);
  static void* slots[1000];
  if (strcmp(argv[1], "tight") == 0) {
    for (long i = 0; i < pairs; ++i) {
      void* p = malloc(32);
      __asm__ volatile("" : : "r"(p) : "memory");
      free(p);
    }
  } else {
    for (long r = 0; r < pairs / 1000; ++r) {
      for (int i = 0; i < 1000; ++i) {
        slots[i] = malloc(32);
        __asm__ volatile("" : : "r"(slots[i]) : "memory");
      }
      for (int i = 0; i < 1000; ++i) free(slots[i]);
    }
  }
  return 0;
}
