// sampling_math.h: the verification math, written once for the CPU path and the CUDA kernels.
//
// Everything here is an inline function usable from host and device code (SSD_HD). The CPU reference
// (distribution.cpp, verifier.cpp, draft_sampler.cpp) and the kernels (cuda/verify_kernels.cu) call
// these same functions, and use only IEEE-754 operations that round identically on both sides (add,
// mul, div, conversions; no libm, no FMA contraction: the CUDA target builds with --fmad=false and C++
// with -ffp-contract=off). Given the same inputs they therefore produce the same bits, which is what
// lets the CUDA tests demand identical token ids and accept lengths.
//
// Contents (SSD_SPEC sections 1, 4, 5):
//   * Philox4x32-10 counter RNG. Key = the request's 64-bit seed; counter = (index, purpose,
//     position lo, position hi). One decision = one counter, so a result depends only on
//     (seed, position, purpose), never on batch composition. uniform01() takes 53 bits.
//   * ssd_exp / ssd_log: our own float exp and log (deterministic across glibc/CUDA; ssd_exp returns 0
//     or a normal float).
//   * Token order: every selection (argmax, top-k, top-p, Saguaro top-F) ranks tokens by
//     (logit descending, index ascending), with -0.0 treated as +0.0. A threshold (logit, index)
//     names the last token of a prefix of that order; ranks_at_or_above() tests membership.
//   * RowStats: a transformed distribution (temperature -> top-k -> top-p -> Saguaro) of one logits
//     row, as thresholds plus the normaliser z. token_weight() is its unnormalised weight, token_prob()
//     its probability; both are pure functions of (stats, logit, index).
//   * Canonical sums over the vocabulary: kLanes = 256 lanes, lane i adds tokens i, i+256, i+512, ...
//     in increasing order in double, then lane_tree_sum() folds lanes with a fixed pairwise tree. A
//     256-thread CUDA block reproduces this exactly (thread i = lane i); the CPU emulates it.
//   * Top-p uses exact integer arithmetic: masses are floor(p * 2^52) as uint64, so cumulative sums do
//     not depend on summation order; the kept set is the shortest prefix of the token order whose mass
//     reaches floor(top_p * 2^52) (at least one token).
//   * Sampling is inverse-CDF over the canonical lane order: pick the lane whose running (sequential,
//     double) sum crosses u * total, then walk that lane's tokens in increasing order. One uniform per
//     decision; works on unnormalised weights (the residual max(0, p - q') needs no extra pass to
//     normalise). This replaces the exponential race first considered: same exactness, but one Philox
//     call and no log per token, which is what makes the CPU path cheap.
//   * The acceptance test in division-free form: accept s iff u * q'(s) < p(s).
//
// Thread safety: pure functions, any thread.
#pragma once

#include <cstdint>
#ifndef __CUDA_ARCH__
#include <cstring>
#endif

#if defined(__CUDACC__)
#define SSD_HD __host__ __device__
#else
#define SSD_HD
#endif

namespace ssd {

// ---- bit casts ----------------------------------------------------------------------------------
SSD_HD inline uint32_t float_bits(float f) {
#ifdef __CUDA_ARCH__
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
#endif
}

SSD_HD inline float bits_float(uint32_t u) {
#ifdef __CUDA_ARCH__
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
#endif
}

SSD_HD inline float neg_inf_f() { return bits_float(0xFF800000u); }
constexpr int32_t kMaxIndex = 0x7FFFFFFF;

// ---- Philox4x32-10 (Salmon et al., SC'11) ---------------------------------------------------------
struct Philox4 {
  uint32_t v[4];
};

SSD_HD inline Philox4 philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0,
                                    uint32_t k1) {
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k0 += 0x9E3779B9u;
      k1 += 0xBB67AE85u;
    }
    const uint64_t p0 = static_cast<uint64_t>(0xD2511F53u) * c0;
    const uint64_t p1 = static_cast<uint64_t>(0xCD9E8D57u) * c2;
    const uint32_t n0 = static_cast<uint32_t>(p1 >> 32) ^ c1 ^ k0;
    const uint32_t n2 = static_cast<uint32_t>(p0 >> 32) ^ c3 ^ k1;
    c1 = static_cast<uint32_t>(p1);
    c3 = static_cast<uint32_t>(p0);
    c0 = n0;
    c2 = n2;
  }
  Philox4 out;
  out.v[0] = c0;
  out.v[1] = c1;
  out.v[2] = c2;
  out.v[3] = c3;
  return out;
}

// What a random draw is for. Distinct purposes give independent streams at the same position.
enum Purpose : uint32_t {
  kPurposeDraft = 1,     // the draft sampling the token at `position`
  kPurposeAccept = 2,    // the ratio test of the proposal at `position`
  kPurposeResidual = 3,  // the recovery token at `position` (residual distribution)
  kPurposeBonus = 4,     // the bonus token at `position` (all proposals accepted)
};

// Uniform double in [0, 1) with 53 random bits, keyed by (seed, position, purpose, index).
SSD_HD inline double uniform01(uint64_t seed, int64_t position, uint32_t purpose, uint32_t index) {
  const uint64_t pos = static_cast<uint64_t>(position);
  const Philox4 r = philox4x32_10(index, purpose, static_cast<uint32_t>(pos), static_cast<uint32_t>(pos >> 32),
                                  static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
  const uint64_t hi = r.v[0] >> 5;  // 27 bits
  const uint64_t lo = r.v[1] >> 6;  // 26 bits
  return static_cast<double>((hi << 26) | lo) * (1.0 / 9007199254740992.0);  // * 2^-53
}

// ---- exp ---------------------------------------------------------------------------------------------
// exp(x) for float x, max error about 2 ulp. Returns exactly 0 for x < -86 (so results are 0 or normal
// floats: no denormals, whose flushing could differ between CPU and GPU); x is clamped to <= 88.
// Branch-free so the CPU loops vectorise. NaN input gives an unspecified value (logits must not be NaN).
// The shared core: xc is x clamped to [-87, 88].
SSD_HD inline float ssd_exp_core(float x, float xc) {
  // n = round-to-nearest-even(x / ln2) via the 1.5 * 2^23 trick (exact for |t| < 2^22).
  const float t = xc * 1.44269502f;
  const float nf = (t + 12582912.0f) - 12582912.0f;
  // r = x - n ln2 in two steps (0.693359375 has 9 significant bits: n * it is exact).
  float r = xc - nf * 0.693359375f;
  r = r + nf * 2.12194440e-4f;
  // e^r on |r| <= ~0.35: Taylor to degree 7 (truncation error < 1e-8 relative).
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const int32_t n = static_cast<int32_t>(nf);
  const float scale = bits_float(static_cast<uint32_t>(n + 127) << 23);
  const float y = p * scale;
  return x < -86.0f ? 0.0f : y;
}

SSD_HD inline float ssd_exp(float x) {
  return ssd_exp_core(x, x > 88.0f ? 88.0f : (x < -87.0f ? -87.0f : x));
}

// ssd_exp for x <= 0 (what softmax weights need): the same bits, one clamp fewer.
SSD_HD inline float ssd_exp_nonpositive(float x) { return ssd_exp_core(x, x < -87.0f ? -87.0f : x); }

// log(x) for float x, max error about 2 ulp: -inf at 0, NaN below 0 or for NaN, +inf at +inf. Not needed
// by verification itself (inverse-CDF sampling takes no logs); here so that log-probabilities reported
// anywhere (CPU or GPU) are computed the same way.
SSD_HD inline float ssd_log(float x) {
  if (!(x > 0.0f)) return x == 0.0f ? neg_inf_f() : bits_float(0x7FC00000u);
  if (x == bits_float(0x7F800000u)) return x;
  int32_t e = 0;
  if (x < 1.17549435e-38f) {  // denormal: scale into the normal range first
    x *= 8388608.0f;          // 2^23
    e = -23;
  }
  const uint32_t u = float_bits(x);
  e += static_cast<int32_t>((u >> 23) & 0xFFu) - 127;
  float m = bits_float((u & 0x007FFFFFu) | 0x3F800000u);  // [1, 2)
  if (m > 1.41421356f) {                                  // -> [sqrt(1/2), sqrt(2))
    m *= 0.5f;
    e += 1;
  }
  // log(m) = 2 atanh(s), s = (m - 1) / (m + 1), |s| <= 0.1716: odd series to s^9.
  const float sv = (m - 1.0f) / (m + 1.0f);
  const float s2 = sv * sv;
  float p = 1.0f / 9.0f;
  p = p * s2 + 1.0f / 7.0f;
  p = p * s2 + 1.0f / 5.0f;
  p = p * s2 + 1.0f / 3.0f;
  p = p * s2 + 1.0f;
  const float ef = static_cast<float>(e);
  return (ef * 0.693359375f + 2.0f * sv * p) - ef * 2.12194440e-4f;
}

// ---- token order -------------------------------------------------------------------------------------
// Monotone map of a float logit to uint32 (bigger logit -> bigger key); -0.0 maps like +0.0.
SSD_HD inline uint32_t ordered_bits(float l) {
  const uint32_t u = float_bits(l == 0.0f ? 0.0f : l);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
// Unique 64-bit key of token t: larger key = earlier in the order (logit desc, index asc).
SSD_HD inline uint64_t token_key(float l, int32_t t) {
  return (static_cast<uint64_t>(ordered_bits(l)) << 32) | static_cast<uint64_t>(0xFFFFFFFFu - static_cast<uint32_t>(t));
}
SSD_HD inline float key_logit(uint64_t key) {
  const uint32_t k = static_cast<uint32_t>(key >> 32);
  return bits_float((k & 0x80000000u) ? (k & 0x7FFFFFFFu) : ~k);
}
SSD_HD inline int32_t key_index(uint64_t key) {
  return static_cast<int32_t>(0xFFFFFFFFu - static_cast<uint32_t>(key));
}
// True when token (l, t) is at or before the threshold token (thr_l, thr_i) in the order.
SSD_HD inline bool ranks_at_or_above(float l, int32_t t, float thr_l, int32_t thr_i) {
  return (l > thr_l) | ((l == thr_l) & (t <= thr_i));  // bitwise: branch-free, vectorises
}

// ---- transformed distributions -------------------------------------------------------------------------
// One row's transformed distribution. Built by compute_row_stats (CPU) / block_row_stats (CUDA).
//   greedy:   one-hot at argmax (temperature 0, or 1/temperature not finite).
//   weight:   w(t) = ssd_exp((logit - lmax) * inv_t) for t at or above (keep_l, keep_i), else 0;
//             times saguaro_c (in double) when saguaro and t is at or above (top_l, top_i).
//   prob:     w(t) * inv_z, z = canonical sum of w over the vocabulary, inv_z = 1 / z.
struct RowStats {
  int32_t greedy;
  int32_t argmax;
  float lmax;
  float inv_t;
  float keep_l;
  int32_t keep_i;
  float top_l;
  int32_t top_i;
  float saguaro_c;
  int32_t saguaro;
  double z;
  double inv_z;
};

// (l - lmax) * inv_t <= 0 for every logit of the row (lmax is its maximum, inv_t > 0).
SSD_HD inline float base_weight(float l, float lmax, float inv_t) { return ssd_exp_nonpositive((l - lmax) * inv_t); }

SSD_HD inline double token_weight(const RowStats& s, float l, int32_t t) {
  const bool keep = ranks_at_or_above(l, t, s.keep_l, s.keep_i);
  const bool top = (s.saguaro != 0) & ranks_at_or_above(l, t, s.top_l, s.top_i);
  const double w = static_cast<double>(base_weight(l, s.lmax, s.inv_t));
  const double scaled = w * static_cast<double>(s.saguaro_c);
  return keep ? (top ? scaled : w) : 0.0;
}

SSD_HD inline double token_prob(const RowStats& s, float l, int32_t t) {
  if (s.greedy) return t == s.argmax ? 1.0 : 0.0;
  return token_weight(s, l, t) * s.inv_z;
}

// ---- canonical reductions ------------------------------------------------------------------------------
constexpr int kLanes = 256;

// Folds lanes[0..256) with the fixed pairwise tree (destroys the array). A CUDA block does the same
// level by level (threads i < s add lane i + s), which gives the same bits.
SSD_HD inline double lane_tree_sum(double* lanes) {
  for (int s = kLanes / 2; s > 0; s >>= 1)
    for (int i = 0; i < s; ++i) lanes[i] += lanes[i + s];
  return lanes[0];
}

// ---- top-p in exact integer arithmetic --------------------------------------------------------------------
constexpr double kMassOne = 4503599627370496.0;  // 2^52: probability 1 as a fixed-point mass
SSD_HD inline uint64_t topp_target(float top_p) { return static_cast<uint64_t>(static_cast<double>(top_p) * kMassOne); }
// mass_scale = kMassOne / z_k, z_k the canonical sum of the top-k-restricted weights.
SSD_HD inline uint64_t topp_mass(float w, double mass_scale) {
  return static_cast<uint64_t>(static_cast<double>(w) * mass_scale);
}

// ---- the ratio test and the residual ------------------------------------------------------------------------
// Accept a proposal s with probability min(1, p(s) / q'(s)), division-free. q'(s) = 0 (s could not have
// been drawn) accepts whenever p(s) > 0.
SSD_HD inline bool accept_proposal(double u, double p_s, double q_s) { return u * q_s < p_s; }
SSD_HD inline double residual_weight(double p, double q) {
  const double d = p - q;
  return d > 0.0 ? d : 0.0;
}

// ---- inverse-CDF sampling over the canonical lane order ------------------------------------------------------
// lanes: the canonical per-lane sums of the sampling weights. Sequential total (not the tree sum).
SSD_HD inline double lanes_total(const double* lanes) {
  double total = 0.0;
  for (int i = 0; i < kLanes; ++i) total += lanes[i];
  return total;
}

struct LanePick {
  int32_t lane;   // -1 when every lane is empty
  double before;  // running sum of the lanes before it
};

// The lane whose running sum first exceeds target (lanes with zero mass are never picked); if rounding
// leaves none, the last non-empty lane.
SSD_HD inline LanePick pick_lane(const double* lanes, double target) {
  LanePick last{-1, 0.0};
  double acc = 0.0;
  for (int i = 0; i < kLanes; ++i) {
    const double w = lanes[i];
    if (w > 0.0) {
      if (acc + w > target) return LanePick{i, acc};
      last = LanePick{i, acc};
    }
    acc += w;
  }
  return last;
}

// The walk inside the picked lane, one token at a time in increasing index order.
struct LaneWalk {
  double acc;     // starts at LanePick::before
  double target;  // u * lanes_total
  int32_t last;   // last token with positive weight seen (the fallback)
};
// Returns true when token t (weight w) is the sample.
SSD_HD inline bool lane_walk_step(LaneWalk& walk, double w, int32_t t) {
  if (!(w > 0.0)) return false;
  walk.last = t;
  walk.acc += w;
  return walk.acc > walk.target;
}

}  // namespace ssd
