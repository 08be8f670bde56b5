// distribution.h: CPU reference for one logits row -> its transformed distribution, and sampling from it.
//
// compute_row_stats() applies SSD_SPEC section 5 (temperature -> top-k -> top-p -> softmax) and, for a
// draft row, Saguaro's down-weighting (section 4), producing the RowStats of sampling_math.h. The CUDA
// kernels compute the same RowStats bit for bit (cuda/block_row_stats.cuh): the thresholds are exact
// selections in the token order, the normaliser is the canonical 256-lane sum, top-p uses integer masses.
// The CPU may select with any algorithm (heap, nth_element, weighted quickselect) because the results are
// defined by the order, not by the algorithm.
//
// Definitions (all in the order "logit descending, index ascending"):
//   top-k      keep the first k tokens (off when k == 0 or k >= V).
//   top-p      among the kept tokens, with masses m(t) = floor(w(t) / z_k * 2^52), keep the shortest
//              prefix whose mass reaches floor(top_p * 2^52) (at least one token; all when never reached).
//   Saguaro    among the kept tokens, the first F are the top set, scaled by C (off when C == 1 or F == 0;
//              also off when scaling would leave zero mass, i.e. C == 0 and the top set is everything).
//
// Thread safety: pure functions; a RowScratch belongs to one thread at a time.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "sampling_math.h"
#include "sampling_transform.h"

namespace ssd {

// Reusable buffers for selections (avoid reallocating per row).
struct RowScratch {
  std::vector<uint64_t> keys;                            // token keys (top-k / top-F selection)
  std::vector<std::pair<uint64_t, uint64_t>> key_mass;  // (key, mass) pairs (top-p selection)
};

// Index of the largest logit, lowest index on ties (-0.0 == +0.0).
int32_t row_argmax(const float* logits, int32_t vocab);

// lanes (nullable, kLanes doubles) receives the canonical per-lane sums of the final weights.
RowStats compute_row_stats(const float* logits, int32_t vocab, const SamplingTransform& sampling,
                           const SaguaroParams& saguaro, RowScratch& scratch, double* lanes);

// Forced inlining keeps these loops inside their (possibly AVX2-cloned, see distribution.cpp) callers.
#if defined(__GNUC__)
#define SSD_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define SSD_ALWAYS_INLINE inline
#endif

// Canonical per-lane sums of weight(t) over t in [0, vocab) (see sampling_math.h).
template <class Weight>
SSD_ALWAYS_INLINE void canonical_lane_sums(int32_t vocab, const Weight& weight, double* lanes) {
  for (int i = 0; i < kLanes; ++i) lanes[i] = 0.0;
  int32_t c = 0;
  for (; c + kLanes <= vocab; c += kLanes)
    for (int i = 0; i < kLanes; ++i) lanes[i] += weight(c + i);
  for (int i = 0; c + i < vocab; ++i) lanes[i] += weight(c + i);
}

// Inverse-CDF sample given the canonical lane sums of weight(). Returns -1 when all weights are 0.
template <class Weight>
SSD_ALWAYS_INLINE int32_t sample_by_lanes(const double* lanes, int32_t vocab, double u, const Weight& weight) {
  const double target = u * lanes_total(lanes);
  const LanePick pick = pick_lane(lanes, target);
  if (pick.lane < 0) return -1;
  LaneWalk walk{pick.before, target, -1};
  for (int32_t t = pick.lane; t < vocab; t += kLanes)
    if (lane_walk_step(walk, weight(t), t)) return t;
  return walk.last;
}

// Sample from a row's distribution (greedy rows return argmax). lanes: the lane sums from
// compute_row_stats, or nullptr to recompute them.
int32_t sample_row(const RowStats& s, const float* logits, int32_t vocab, const double* lanes, double u);

// Sample the recovery token from norm(max(0, p - q')). q is a RowStats over q_logits, or (q == nullptr)
// one-hot at onehot_token. If the residual has zero mass (p <= q' everywhere, which rejection makes
// impossible in exact arithmetic but rounding could allow) the token is sampled from p with the same u.
int32_t sample_residual(const RowStats& p, const float* p_logits, const RowStats* q, const float* q_logits,
                        int32_t onehot_token, int32_t vocab, double u);

// out[t] = (float) prob(t) for the whole row.
void write_row_probs(const RowStats& s, const float* logits, int32_t vocab, float* out);

}  // namespace ssd
