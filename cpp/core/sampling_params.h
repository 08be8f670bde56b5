// sampling_params.h: per-sequence sampling parameters as the verifier and the draft sampler see them.
//
// Plain structs (trivially copyable, also copied to the GPU as they are). SamplingParams describes one
// distribution transform (SSD_SPEC section 5): logits / temperature -> top-k -> top-p -> softmax;
// temperature 0 means one-hot at the argmax. SaguaroParams describes the draft-side down-weighting of
// section 4. check_* throw std::invalid_argument naming the field, the value and the allowed range;
// the Python layer validates first with the user's argument names, these guard direct C++ callers.
// Any thread.
#pragma once

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace ssd {

struct SamplingParams {
  float temperature = 1.0f;  // >= 0, finite; 0 = greedy (one-hot argmax)
  int32_t top_k = 0;         // >= 0; 0 = off (also off when >= V)
  float top_p = 1.0f;        // (0, 1]; 1 = off
};

struct SaguaroParams {
  float c = 1.0f;       // [0, 1]; 1 = plain sampling
  int32_t fanout = 0;   // F >= 0: size of the down-weighted top set of q; 0 = no down-weighting
};

// What verification needs per sequence (everything except the tensors and the per-position fan-out).
struct SeqVerifyParams {
  SamplingParams target;
  SamplingParams draft;    // how each proposal distribution q was transformed (ignored when onehot)
  float saguaro_c = 1.0f;  // with the per-proposal fan-out F_j, defines q' (ignored when onehot)
  int32_t draft_len = 0;   // proposals to verify, 0..K
  uint64_t seed = 0;
  int64_t position = 0;    // absolute position of the token decided by target row 0
  int32_t onehot = 0;      // 1: proposals are deterministic (q one-hot at the proposal)
  int32_t pad_ = 0;
};

// What the draft sampler needs per row.
struct DraftRowParams {
  SamplingParams sampling;
  SaguaroParams saguaro;
  uint64_t seed = 0;
  int64_t position = 0;  // absolute position of the token being sampled
};

inline void check_sampling_params(const SamplingParams& p, const std::string& where) {
  if (!(p.temperature >= 0.0f) || !std::isfinite(p.temperature))
    throw std::invalid_argument(where + ".temperature: got " + std::to_string(p.temperature) +
                                "; allowed: a finite number >= 0 (0 = greedy)");
  if (p.top_k < 0)
    throw std::invalid_argument(where + ".top_k: got " + std::to_string(p.top_k) + "; allowed: an integer >= 0 (0 = off)");
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f))
    throw std::invalid_argument(where + ".top_p: got " + std::to_string(p.top_p) + "; allowed: (0, 1] (1 = off)");
}

inline void check_saguaro_c(float c, const std::string& where) {
  if (!(c >= 0.0f && c <= 1.0f))
    throw std::invalid_argument(where + ".saguaro_c: got " + std::to_string(c) + "; allowed: [0, 1] (1 = off)");
}

}  // namespace ssd
