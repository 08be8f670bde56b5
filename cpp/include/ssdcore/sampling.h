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
// Validation happens at submit time (Engine::submit / Engine::generate throw std::invalid_argument
// naming the field). Threads: a plain value type.
#pragma once
#include <cstdint>
#include <vector>

namespace ssdcore {

struct SamplingParams {
  double temperature = 1.0;             // finite, >= 0; 0 = greedy
  std::int32_t top_k = 0;               // >= 0; 0 = off
  double top_p = 1.0;                   // (0, 1]; 1 = off
  std::uint64_t seed = 0;               // request seed of the counter-based random stream
  std::int32_t max_tokens = 64;         // tokens to generate, >= 1 (prompt + max_tokens <= max_context)
  bool ignore_eos = false;              // true: the engine's EOS ids do not stop the request
  std::vector<std::int32_t> stop_token_ids;  // also stop on these (the stop token is not output)
};

}  // namespace ssdcore
