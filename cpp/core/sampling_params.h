// sampling_params.h: the runtime's view of SamplingParams, the per-request sampling and stopping
// settings.
//
// Concept: the struct is the public ssdcore::SamplingParams (ssdcore/sampling.h), named here
// ssd::SamplingParams; sampling_params.cpp implements its validate(). A request's distribution
// transform (SamplingTransform, used by the sampling math for the target and the draft alike) is
// derived from it by transform_of(). Stop strings need the tokenizer and stay in Python.
//
// Threads: pure functions over a plain value type.
#pragma once

#include "sampling_transform.h"
#include "ssdcore/sampling.h"

namespace ssd {

using SamplingParams = ssdcore::SamplingParams;

// Whether verification reads the draft's distribution q for this request: not when greedy
// (temperature 0 accepts a proposal iff it is the target's argmax), so the draft keeps no q then.
inline bool needs_q(const SamplingParams& p) { return p.temperature != 0.0; }

// The distribution transform of a request (the draft uses the same one).
inline SamplingTransform transform_of(const SamplingParams& p) {
  SamplingTransform t;
  t.temperature = static_cast<float>(p.temperature);
  t.top_k = p.top_k;
  t.top_p = static_cast<float>(p.top_p);
  return t;
}

}  // namespace ssd
