// Messages to the user: bad calls are reported as "jsmalloc: <what> <pointer>" on
// stderr, then the process aborts. TextBuffer formats without allocating.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common.h"

namespace jsmalloc {

class TextBuffer {
 public:
  TextBuffer(char* buf, size_t cap) : buf_(buf), cap_(cap) {
    if (cap_ > 0) buf_[0] = 0;
  }
  TextBuffer& Add(const char* s);
  TextBuffer& Dec(int64_t v);
  TextBuffer& Udec(uint64_t v);
  TextBuffer& Hex(uint64_t v);  // 0x-prefixed
  TextBuffer& Char(char c);
  // Bytes as "123.4 MiB"-style text.
  TextBuffer& Bytes(uint64_t v);
  const char* data() const { return buf_; }
  size_t size() const { return len_; }
  // Characters wanted so far, even past the capacity (like snprintf's result).
  size_t wanted() const { return wanted_; }

 private:
  char* buf_;
  size_t cap_;
  size_t len_ = 0;
  size_t wanted_ = 0;
};

[[noreturn]] JS_SLOW_PATH void ReportBadPointer(const char* what, const void* p);
[[noreturn]] JS_SLOW_PATH void ReportSizedFreeMismatch(const void* p, size_t given, size_t actual);
[[noreturn]] JS_SLOW_PATH void ReportAlignedFreeMismatch(const void* p, size_t align);

}  // namespace jsmalloc
