/* A C program using the installed jsmalloc: built by the CMake package and by pkg-config. */
#include "proof.h"


int main(void) {
  int failures = consumer_prove("C consumer", CONSUMER_REPLACES_MALLOC, CONSUMER_JSMALLOC_IN_EXECUTABLE);
  if (failures != 0) return 1;
  puts("C consumer: ok");
  return 0;
}
