// ssdcore/sampling.h: ssdcore::SamplingParams, how one request samples and when it stops.
//
// Mirrors the Python ssdcore.SamplingParams (less the stop strings, which need a tokenizer: a native
// application that wants them checks the streamed tokens itself and cancels, e.g. by returning false
// from its TokenCallback). Every distribution, the target's and the draft's, goes through
// logits / temperature -> top-k -> top-p -> softmax; temperature 0 is greedy (argmax), and then
// ssd and sd produce exactly the tokens ar produces. Sampled output follows the target's
// distribution exactly (lossless verification); a fixed seed gives the same tokens whatever else is
// in the batch.
//
// The one per-request type: the runtime and the Python binding use this struct (the Python frozen
// dataclass ssdcore.SamplingParams mirrors it, a test keeps the two in sync); for_each_field() lists
// the fields once. validate() holds the value rules and throws std::invalid_argument naming the field,
// the value and what is allowed ("SamplingParams.top_p = 0.0 is invalid: allowed a number in (0, 1]
// (1 = off)"); Engine::submit / Engine::generate call it. Threads: a plain value type.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace ssdcore {

struct SamplingParams {
  double temperature = 1.0;             // finite, >= 0; 0 = greedy
  std::int32_t top_k = 0;               // >= 0; 0 = off
  double top_p = 1.0;                   // (0, 1]; 1 = off
  std::uint64_t seed = 0;               // request seed of the counter-based random stream
  std::int32_t max_tokens = 64;         // tokens to generate, >= 1 (prompt + max_tokens <= max_context)
  bool ignore_eos = false;              // true: the engine's EOS ids do not stop the request
  std::vector<std::int32_t> stop_token_ids;  // also stop on these, ids >= 0 (the stop token is not output)
  std::int64_t constraint = 0;          // 0 = none; > 0: the TokenMasker's key for this request's grammar
                                        // (ssdcore/token_masker.h; needs an Engine built with a masker;
                                        // not with ignore_eos: the grammar's end is the request's end)

  // Calls f(name, &SamplingParams::field) for every field above, in declaration order.
  template <class F>
  static void for_each_field(F&& f) {
    f("temperature", &SamplingParams::temperature);
    f("top_k", &SamplingParams::top_k);
    f("top_p", &SamplingParams::top_p);
    f("seed", &SamplingParams::seed);
    f("max_tokens", &SamplingParams::max_tokens);
    f("ignore_eos", &SamplingParams::ignore_eos);
    f("stop_token_ids", &SamplingParams::stop_token_ids);
    f("constraint", &SamplingParams::constraint);
  }

  // The field names, in declaration order.
  static std::vector<std::string> field_names() {
    std::vector<std::string> names;
    for_each_field([&names](const char* name, auto) { names.emplace_back(name); });
    return names;
  }
  // Throws std::invalid_argument on the first invalid field (declaration order).
  void validate() const;
};

}  // namespace ssdcore
