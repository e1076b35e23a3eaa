// PITFALLS 3 and 4: allocation calls before jsmalloc's own constructor ran. This
// constructor has priority 101, so it runs before every default-priority constructor
// (jsmalloc's included) of a statically linked program; libstdc++'s locale set-up does
// the same with free(NULL).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsmalloc.h"

static char* early;

__attribute__((constructor(101))) static void EarlyConstructor(void) {
  free(NULL);
  early = malloc(100);
  if (early != NULL) strcpy(early, "allocated before main");
  void* tmp = calloc(10, 10);
  free(tmp);
}

int main(void) {
  if (early == NULL || strcmp(early, "allocated before main") != 0) return 1;
  // The block really came from jsmalloc (its usable size is a jsmalloc class size).
  if (js_usable_size(early) != 112) return 2;
  free(early);
  js_stats_t stats;
  js_get_stats(&stats);
  if (stats.spans_allocated == 0) return 3;
  puts("ok");
  return 0;
}
