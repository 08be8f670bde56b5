// ssdcore/request.h: how a request ended and what it measured: FinishReason, ErrorKind and
// RequestMetrics, the one definition of each used by the runtime, the public Engine and the Python
// binding. Threads: plain value types.
#pragma once
#include <cstdint>

namespace ssdcore {

enum class FinishReason : int {
  kNone = 0,   // still running (only in non-final Events)
  kLength,     // max_tokens generated
  kStop,       // an EOS id or a stop token id was decided (not included in the output)
  kCancelled,  // cancel() or a TokenCallback returning false
  kError,      // a model runner failed, or the engine closed first; see ErrorKind
};
// "none", "length", "stop", "cancelled", "error".
const char* to_string(FinishReason reason) noexcept;

// Why a request finished with FinishReason::kError (Python raises the matching exception class).
enum class ErrorKind : int {
  kNone = 0,     // not an error
  kModelRunner,  // a model runner's forward threw (target or draft)
  kNonFinite,    // a model produced NaN or inf logits
  kClosed,       // the engine closed before the request finished
};
// "", "model_runner", "non_finite", "closed".
const char* to_string(ErrorKind kind) noexcept;

// Per-request metrics, complete when the request has finished.
struct RequestMetrics {
  std::int32_t prompt_tokens = 0;
  std::int32_t generated_tokens = 0;
  std::int32_t rounds = 0;             // target verifications the request took part in
  std::int32_t accepted_drafts = 0;    // drafted tokens accepted
  std::int32_t cache_hits = 0;         // rounds whose speculation came from the SSD cache
  std::int32_t cache_lookups = 0;
  double time_to_first_token = 0.0;    // seconds from submission
  double decode_seconds = 0.0;         // seconds from the first token to the finish

  // Calls f(name, &RequestMetrics::field) for every field above, in declaration order.
  template <class F>
  static void for_each_field(F&& f) {
    f("prompt_tokens", &RequestMetrics::prompt_tokens);
    f("generated_tokens", &RequestMetrics::generated_tokens);
    f("rounds", &RequestMetrics::rounds);
    f("accepted_drafts", &RequestMetrics::accepted_drafts);
    f("cache_hits", &RequestMetrics::cache_hits);
    f("cache_lookups", &RequestMetrics::cache_lookups);
    f("time_to_first_token", &RequestMetrics::time_to_first_token);
    f("decode_seconds", &RequestMetrics::decode_seconds);
  }
};

}  // namespace ssdcore
