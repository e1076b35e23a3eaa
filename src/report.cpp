#include "report.h"

#include "common.h"
#include "fast_path.h"
#include "os/sys.h"

namespace jsmalloc {

TextBuffer& TextBuffer::Char(char c) {
  ++wanted_;
  if (len_ + 1 < cap_) {
    buf_[len_++] = c;
    buf_[len_] = 0;
  }
  return *this;
}

TextBuffer& TextBuffer::Add(const char* s) {
  while (*s) Char(*s++);
  return *this;
}

TextBuffer& TextBuffer::Udec(uint64_t v) {
  char tmp[24];
  int n = 0;
  do {
    tmp[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  while (n > 0) Char(tmp[--n]);
  return *this;
}

TextBuffer& TextBuffer::Dec(int64_t v) {
  if (v < 0) {
    Char('-');
    return Udec(static_cast<uint64_t>(0) - static_cast<uint64_t>(v));
  }
  return Udec(static_cast<uint64_t>(v));
}

TextBuffer& TextBuffer::Hex(uint64_t v) {
  Add("0x");
  char tmp[16];
  int n = 0;
  do {
    tmp[n++] = "0123456789abcdef"[v & 15];
    v >>= 4;
  } while (v != 0);
  while (n > 0) Char(tmp[--n]);
  return *this;
}

TextBuffer& TextBuffer::Bytes(uint64_t v) {
  static const char* const kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int unit = 0;
  uint64_t scaled10 = v * 10;
  while (v >= 1024 * 10 && unit < 4) {
    scaled10 = v * 10 / 1024;
    v /= 1024;
    ++unit;
  }
  if (unit == 0) return Udec(v).Add(" B");
  Udec(scaled10 / 10).Char('.').Udec(scaled10 % 10).Char(' ').Add(kUnits[unit]);
  return *this;
}

void ReportBadPointer(const char* what, const void* p) {
  char msg[128];
  TextBuffer b(msg, sizeof(msg));
  b.Add("jsmalloc: ").Add(what).Char(' ').Hex(reinterpret_cast<uintptr_t>(p)).Char('\n');
  os::WriteStderr(b.data(), b.size());
  os::Abort();
}

void ReportDoubleFree(void* p) {
  ReportBadPointer("double free", p);
}

void ReportSizedFreeMismatch(const void* p, size_t given, size_t actual) {
  char msg[192];
  TextBuffer b(msg, sizeof(msg));
  b.Add("jsmalloc: sized free with wrong size ").Hex(reinterpret_cast<uintptr_t>(p));
  b.Add(" (size given ").Udec(given).Add(", block holds ").Udec(actual).Add(")\n");
  os::WriteStderr(b.data(), b.size());
  os::Abort();
}

void ReportAlignedFreeMismatch(const void* p, size_t align) {
  char msg[192];
  TextBuffer b(msg, sizeof(msg));
  b.Add("jsmalloc: aligned free with wrong alignment ").Hex(reinterpret_cast<uintptr_t>(p));
  b.Add(" (alignment given ").Udec(align).Add(")\n");
  os::WriteStderr(b.data(), b.size());
  os::Abort();
}

void InternalError(const char* what, const char* file, int line) {
  char msg[256];
  TextBuffer b(msg, sizeof(msg));
  b.Add("jsmalloc: internal error: ")
      .Add(what)
      .Add(" at ")
      .Add(file)
      .Char(':')
      .Dec(line)
      .Char('\n');
  os::WriteStderr(b.data(), b.size());
  os::Abort();
}

}  // namespace jsmalloc
