// public_api.cpp: the small free functions of the public API (version, the names of its
// enumerations). to_string(Backup) and to_string(Phase) live beside their runtime users
// (engine_config.cpp, stats.cpp).
#include "public_api.h"

namespace ssdcore {

const char* version() noexcept { return SSDCORE_VERSION_STRING; }

const char* to_string(FinishReason reason) noexcept {
  switch (reason) {
    case FinishReason::kNone: return "none";
    case FinishReason::kLength: return "length";
    case FinishReason::kStop: return "stop";
    case FinishReason::kCancelled: return "cancelled";
    case FinishReason::kError: return "error";
  }
  return "?";
}
const char* to_string(ErrorKind kind) noexcept {
  switch (kind) {
    case ErrorKind::kNone: return "";
    case ErrorKind::kModelRunner: return "model_runner";
    case ErrorKind::kNonFinite: return "non_finite";
    case ErrorKind::kClosed: return "closed";
  }
  return "?";
}
const char* to_string(SpecSource s) noexcept {
  switch (s) {
    case SpecSource::kCacheHit: return "cache_hit";
    case SpecSource::kJit: return "jit";
    case SpecSource::kNgram: return "ngram";
    case SpecSource::kNone: return "none";
    case SpecSource::kSdDraft: return "sd_draft";
  }
  return "?";
}

}  // namespace ssdcore
