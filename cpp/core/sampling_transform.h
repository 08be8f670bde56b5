// sampling_transform.h: SamplingTransform, the distribution transform the sampling math applies to a
// row of logits, and the other per-row parameters the verifier and the draft sampler see.
//
// Plain structs (trivially copyable, also copied to the GPU as they are). SamplingTransform is
// {temperature, top-k, top-p} (SSD_SPEC section 5): logits / temperature -> top-k -> top-p -> softmax;
// temperature 0 means one-hot at the argmax. It is not the per-request ssdcore::SamplingParams (which
// also says when to stop): a request's transform is derived from it (sampling_params.h).
// SaguaroParams describes the draft-side down-weighting of section 4.
//
// The value rules live here once: check_sampling_transform() and check_saguaro_c() throw
// std::invalid_argument "<where>.<field> = <value> is invalid: allowed <range>"; SamplingParams::
// validate(), the verifier and the draft sampler all call them. Any thread.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace ssd {

struct SamplingTransform {
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
  SamplingTransform target;
  SamplingTransform draft;    // how each proposal distribution q was transformed (ignored when onehot)
  float saguaro_c = 1.0f;  // with the per-proposal fan-out F_j, defines q' (ignored when onehot)
  int32_t draft_len = 0;   // proposals to verify, 0..K
  uint64_t seed = 0;
  int64_t position = 0;    // absolute position of the token decided by target row 0
  int32_t onehot = 0;      // 1: proposals are deterministic (q one-hot at the proposal)
  int32_t pad_ = 0;
};

// What the draft sampler needs per row.
struct DraftRowParams {
  SamplingTransform sampling;
  SaguaroParams saguaro;
  uint64_t seed = 0;
  int64_t position = 0;  // absolute position of the token being sampled
};

// A number as Python's repr() shows it: the shortest decimal that reads back as d, with ".0" when it
// would look like an integer ("0.0", "-0.5", "1.0000001", "nan", "inf").
inline std::string format_number(double d) {
  char buf[40];
  for (int precision = 6; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof buf, "%.*g", precision, d);
    if (std::strtod(buf, nullptr) == d) break;
  }
  std::string out = buf;
  if (out.find_first_of(".eni") == std::string::npos) out += ".0";  // not nan/inf/exponent
  return out;
}

[[noreturn]] inline void invalid_sampling_value(const std::string& where, const char* field,
                                                const std::string& value, const char* allowed) {
  throw std::invalid_argument(where + "." + field + " = " + value + " is invalid: allowed " + allowed);
}

// The rules for a transform's values, given as the widest types that hold them (a request keeps
// temperature and top_p as doubles; the sampling math uses them as floats, which must stay finite).
inline void check_sampling_transform(double temperature, long long top_k, double top_p, const std::string& where) {
  if (!(temperature >= 0.0) || !std::isfinite(static_cast<float>(temperature)))
    invalid_sampling_value(where, "temperature", format_number(temperature), "a finite number >= 0 (0 = greedy)");
  if (top_k < 0 || top_k > INT32_MAX)
    invalid_sampling_value(where, "top_k", std::to_string(top_k), "an integer in [0, 2147483647] (0 = off)");
  if (!(top_p > 0.0 && top_p <= 1.0) || !(static_cast<float>(top_p) > 0.0f))
    invalid_sampling_value(where, "top_p", format_number(top_p), "a number in (0, 1] (1 = off)");
}

inline void check_sampling_transform(const SamplingTransform& t, const std::string& where) {
  check_sampling_transform(t.temperature, t.top_k, t.top_p, where);
}

inline void check_saguaro_c(double c, const std::string& where) {
  if (!(c >= 0.0 && c <= 1.0))
    invalid_sampling_value(where, "saguaro_c", format_number(c), "a number in [0, 1] (1 = plain sampling)");
}

}  // namespace ssd
