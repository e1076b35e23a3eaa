#include "options.h"

#include "os/sys.h"
#include "report.h"

namespace jsmalloc {

struct OptionInfo {
  const char* env;
  int64_t def;
  const char* doc;
};

namespace {
constexpr OptionInfo kOptionTable[] = {
#define JS_OPTION_INFO(name, env, def, doc) {env, def, doc},
    JSMALLOC_OPTIONS(JS_OPTION_INFO)
#undef JS_OPTION_INFO
};

bool ParseValue(const char* s, int64_t* out) {
  int64_t v = 0;
  bool any = false;
  while (*s >= '0' && *s <= '9') {
    v = v * 10 + (*s++ - '0');
    any = true;
  }
  if (!any) return false;
  switch (*s) {
    case 'k':
    case 'K':
      v <<= 10;
      ++s;
      break;
    case 'm':
    case 'M':
      v <<= 20;
      ++s;
      break;
    case 'g':
    case 'G':
      v <<= 30;
      ++s;
      break;
    case 't':
    case 'T':
      v <<= 40;
      ++s;
      break;
    default:
      break;
  }
  if (*s == 'b' || *s == 'B' || *s == 'i') ++s;  // "kb", "kib" tolerated
  if (*s == 'b' || *s == 'B') ++s;
  if (*s != 0) return false;
  *out = v;
  return true;
}
}  // namespace

constinit int64_t g_option_values[static_cast<int>(Option::kCount)] = {
#define JS_OPTION_DEFAULT(name, env, def, doc) def,
    JSMALLOC_OPTIONS(JS_OPTION_DEFAULT)
#undef JS_OPTION_DEFAULT
};

void LoadOptions() {
  char name[64];
  for (int i = 0; i < static_cast<int>(Option::kCount); ++i) {
    TextBuffer b(name, sizeof(name));
    b.Add("JSMALLOC_").Add(kOptionTable[i].env);
    const char* value = os::GetEnv(name);
    if (value == nullptr) continue;
    int64_t v;
    if (ParseValue(value, &v)) {
      g_option_values[i] = v;
    } else {
      char msg[160];
      TextBuffer m(msg, sizeof(msg));
      m.Add("jsmalloc: ignoring ").Add(name).Add("=").Add(value).Add(" (not a number)\n");
      os::WriteStderr(m.data(), m.size());
    }
  }
}

void PrintOptions() {
  for (int i = 0; i < static_cast<int>(Option::kCount); ++i) {
    char line[256];
    TextBuffer b(line, sizeof(line));
    b.Add("jsmalloc: option ").Add(kOptionTable[i].env).Add(" = ").Dec(g_option_values[i]);
    b.Add("  (").Add(kOptionTable[i].doc).Add(")\n");
    os::WriteStderr(b.data(), b.size());
  }
}

}  // namespace jsmalloc
