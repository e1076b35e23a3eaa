#include "sampler.h"

#include "common.h"
#include "options.h"
#include "os/sys.h"

namespace jsmalloc {

namespace {
constinit thread_local uint64_t tl_rng JS_TLS_MODEL = 0;

// -ln(u) for u uniform in (0, 1], to about 1 % — plenty for choosing sample points.
double NegLog(double u) {
  int exp = 0;
  while (u < 0.5) {
    u *= 2;
    ++exp;
  }
  // u in [0.5, 1): ln(u) by its series around 1, t = (u - 1) / (u + 1).
  double t = (u - 1) / (u + 1), t2 = t * t;
  double ln_u = 2 * t * (1 + t2 / 3 + t2 * t2 / 5 + t2 * t2 * t2 / 7);
  return exp * 0.6931471805599453 - ln_u;
}
}  // namespace

int64_t NextSampleCountdown() {
  int64_t mean = GetOption(Option::kSampleInterval);
  if (mean <= 0) return INT64_MAX;
  if (tl_rng == 0) tl_rng = os::RandomSeed() | 1;
  tl_rng ^= tl_rng << 13;
  tl_rng ^= tl_rng >> 7;
  tl_rng ^= tl_rng << 17;
  double u = static_cast<double>((tl_rng >> 11) + 1) / 9007199254740992.0;  // (0, 1]
  double v = NegLog(u) * static_cast<double>(mean);
  return v > 9.0e18 ? INT64_MAX : static_cast<int64_t>(v) + 1;
}

}  // namespace jsmalloc
