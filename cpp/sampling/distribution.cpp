// distribution.cpp: see distribution.h.
#include "distribution.h"

#include <algorithm>
#include <cstring>
#include <functional>

// The vocabulary loops are compiled twice on x86-64 (baseline SSE2 and AVX2, picked at load time). Both
// clones perform the same IEEE operations per element in the same order (no FMA: -ffp-contract=off, and
// the avx2 target does not include fma), so they return identical bits; AVX2 is just ~2-3x faster.
#if defined(__x86_64__) && defined(__GNUC__) && defined(__linux__) && !defined(__SANITIZE_THREAD__) && \
    !defined(__SANITIZE_ADDRESS__)
#define SSD_VECTOR_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define SSD_VECTOR_CLONES
#endif

namespace ssd {
namespace {

// A threshold token: "at or above (l, i)" in the token order.
struct Thr {
  float l;
  int32_t i;
};

Thr thr_all() { return Thr{neg_inf_f(), kMaxIndex}; }
Thr thr_of_key(uint64_t key) { return Thr{key_logit(key), key_index(key)}; }

// The k-th token (k >= 1) of the order among the candidates (tokens at or above `cand`); `cand` itself
// when there are fewer than k candidates. Small k: one pass with a bounded min-heap of keys; large k:
// nth_element over the candidates' keys.
SSD_VECTOR_CLONES Thr select_count(const float* logits, int32_t vocab, Thr cand, int64_t k, RowScratch& sc) {
  std::vector<uint64_t>& keys = sc.keys;
  keys.clear();
  if (k <= 2048) {
    const std::greater<uint64_t> min_heap;
    float floor_l = neg_inf_f();
    for (int32_t t = 0; t < vocab; ++t) {
      if ((t & 63) == 0 && t + 64 <= vocab && static_cast<int64_t>(keys.size()) == k) {
        // Skip whole chunks of 64 whose maximum cannot enter the heap (vectorised maximum).
        float m[8];
        for (int j = 0; j < 8; ++j) m[j] = logits[t + j];
        for (int c = 8; c < 64; c += 8)
          for (int j = 0; j < 8; ++j) m[j] = logits[t + c + j] > m[j] ? logits[t + c + j] : m[j];
        for (int j = 1; j < 8; ++j) m[0] = m[j] > m[0] ? m[j] : m[0];
        if (m[0] <= floor_l) {
          t += 63;
          continue;
        }
      }
      const float x = logits[t];
      // Later tokens with an equal logit have bigger indices, i.e. smaller keys: skip them too.
      if (static_cast<int64_t>(keys.size()) == k && x <= floor_l) continue;
      if (!ranks_at_or_above(x, t, cand.l, cand.i)) continue;
      const uint64_t key = token_key(x, t);
      if (static_cast<int64_t>(keys.size()) < k) {
        keys.push_back(key);
        std::push_heap(keys.begin(), keys.end(), min_heap);
      } else if (key > keys.front()) {
        std::pop_heap(keys.begin(), keys.end(), min_heap);
        keys.back() = key;
        std::push_heap(keys.begin(), keys.end(), min_heap);
      } else {
        continue;
      }
      if (static_cast<int64_t>(keys.size()) == k) floor_l = key_logit(keys.front());
    }
    if (static_cast<int64_t>(keys.size()) < k) return cand;
    return thr_of_key(keys.front());
  }
  for (int32_t t = 0; t < vocab; ++t)
    if (ranks_at_or_above(logits[t], t, cand.l, cand.i)) keys.push_back(token_key(logits[t], t));
  if (static_cast<int64_t>(keys.size()) < k) return cand;
  std::nth_element(keys.begin(), keys.begin() + (k - 1), keys.end(), std::greater<uint64_t>());
  return thr_of_key(keys[k - 1]);
}

// Position in a[0..n) (unordered (key, mass) pairs, total mass >= need) of the token at which the
// cumulative mass in key-descending order first reaches need. Expected O(n): weighted quickselect.
size_t weighted_select(std::pair<uint64_t, uint64_t>* a, size_t n, uint64_t need) {
  const auto desc = [](const std::pair<uint64_t, uint64_t>& x, const std::pair<uint64_t, uint64_t>& y) {
    return x.first > y.first;
  };
  size_t lo = 0, hi = n;
  while (hi - lo > 64) {
    const size_t mid = lo + (hi - lo) / 2;
    std::nth_element(a + lo, a + mid, a + hi, desc);
    uint64_t upper = 0;
    for (size_t i = lo; i <= mid; ++i) upper += a[i].second;
    if (upper >= need) {
      hi = mid + 1;
    } else {
      need -= upper;
      lo = mid + 1;
    }
  }
  std::sort(a + lo, a + hi, desc);
  uint64_t cum = 0;
  for (size_t i = lo; i < hi; ++i) {
    cum += a[i].second;
    if (cum >= need) return i;
  }
  return hi - 1;
}

// Top-p threshold among the tokens kept so far (s.keep_*). One pass files each kept token's mass into a
// bucket by -z = (lmax - logit) / T (64 buckets per unit down to -z = 16, then one tail bucket). Buckets
// are contiguous ranges of the token order, so the bucket where the cumulative mass crosses the target
// holds the answer; only its tokens are gathered and selected exactly (weighted quickselect).
SSD_VECTOR_CLONES Thr select_top_p(const float* logits, int32_t vocab, const RowStats& s, double mass_scale,
                                   uint64_t need, RowScratch& sc) {
  constexpr int kBuckets = 1024;  // + the tail bucket kBuckets
  constexpr int32_t kChunk = 512;
  std::vector<uint64_t>& hist = sc.keys;
  hist.assign(kBuckets + 1, 0);
  const float lmax = s.lmax, inv_t = s.inv_t, keep_l = s.keep_l;
  const int32_t keep_i = s.keep_i;
  const auto bucket_of = [&](float l) {
    const float nz = (lmax - l) * inv_t;
    return nz < 16.0f ? static_cast<int32_t>(nz * 64.0f) : kBuckets;
  };
  alignas(64) float w[kChunk];
  alignas(64) int32_t bk[kChunk];
  for (int32_t c = 0; c < vocab; c += kChunk) {
    const int32_t n = vocab - c < kChunk ? vocab - c : kChunk;
    for (int32_t j = 0; j < n; ++j) {  // vectorised
      const float x = logits[c + j];
      const bool keep = ranks_at_or_above(x, c + j, keep_l, keep_i);
      w[j] = keep ? base_weight(x, lmax, inv_t) : 0.0f;
      bk[j] = bucket_of(x);
    }
    for (int32_t j = 0; j < n; ++j) hist[bk[j]] += topp_mass(w[j], mass_scale);
  }
  uint64_t above = 0;
  int32_t crossing = -1;
  for (int32_t b = 0; b <= kBuckets; ++b) {
    if (above + hist[b] >= need && hist[b] > 0) {
      crossing = b;
      break;
    }
    above += hist[b];
  }
  if (crossing < 0) return Thr{keep_l, keep_i};  // the target is never reached: keep all
  std::vector<std::pair<uint64_t, uint64_t>>& km = sc.key_mass;
  km.clear();
  for (int32_t c = 0; c < vocab; c += kChunk) {
    const int32_t n = vocab - c < kChunk ? vocab - c : kChunk;
    for (int32_t j = 0; j < n; ++j) bk[j] = bucket_of(logits[c + j]);  // vectorised
    for (int32_t j = 0; j < n; ++j) {
      const float x = logits[c + j];
      if (bk[j] != crossing || !ranks_at_or_above(x, c + j, keep_l, keep_i)) continue;
      km.emplace_back(token_key(x, c + j), topp_mass(base_weight(x, lmax, inv_t), mass_scale));
    }
  }
  return thr_of_key(km[weighted_select(km.data(), km.size(), need - above)].first);
}

// Canonical z of the weights described by s; lanes_out (nullable) gets the lane sums before the tree.
SSD_VECTOR_CLONES double canonical_z(const RowStats& s, const float* logits, int32_t vocab, double* lanes_out) {
  alignas(64) double lanes[kLanes];
  if (!s.saguaro && s.keep_i == kMaxIndex && s.keep_l == neg_inf_f()) {
    const float lmax = s.lmax, inv_t = s.inv_t;
    canonical_lane_sums(
        vocab, [&](int32_t t) { return static_cast<double>(base_weight(logits[t], lmax, inv_t)); }, lanes);
  } else {
    canonical_lane_sums(vocab, [&](int32_t t) { return token_weight(s, logits[t], t); }, lanes);
  }
  if (lanes_out)
    for (int i = 0; i < kLanes; ++i) lanes_out[i] = lanes[i];
  return lane_tree_sum(lanes);
}

// The largest logit and the first block of 1024 holding it.
struct BlockMax {
  float value;
  int32_t block;
};

SSD_VECTOR_CLONES BlockMax row_max(const float* logits, int32_t vocab) {
  // Blocks of 1024: vectorised block maxima, then the first block holding the overall maximum is scanned.
  constexpr int32_t kBlock = 1024;
  float best = logits[0];
  int32_t best_block = 0;
  for (int32_t b0 = 0; b0 < vocab; b0 += kBlock) {
    const int32_t end = b0 + kBlock < vocab ? b0 + kBlock : vocab;
    float m[8];
    int32_t t = b0;
#if defined(__GNUC__)
    // GCC does not vectorise a float max reduction without -ffast-math; vector extensions make it explicit.
    typedef float v8f __attribute__((vector_size(32)));
    v8f mv = {logits[b0], logits[b0], logits[b0], logits[b0], logits[b0], logits[b0], logits[b0], logits[b0]};
    for (; t + 8 <= end; t += 8) {
      v8f x;
      std::memcpy(&x, logits + t, sizeof x);
      mv = x > mv ? x : mv;
    }
    for (int j = 0; j < 8; ++j) m[j] = mv[j];
#else
    for (int j = 0; j < 8; ++j) m[j] = logits[b0];
#endif
    for (; t < end; ++t) m[0] = logits[t] > m[0] ? logits[t] : m[0];
    for (int j = 1; j < 8; ++j) m[0] = m[j] > m[0] ? m[j] : m[0];
    if (m[0] > best) {
      best = m[0];
      best_block = b0;
    }
  }
  return BlockMax{best, best_block};
}

}  // namespace

int32_t row_argmax(const float* logits, int32_t vocab) {
  const BlockMax m = row_max(logits, vocab);
  for (int32_t t = m.block; t < vocab; ++t)
    if (logits[t] == m.value) return t;
  return 0;  // only with NaN logits
}

RowStats compute_row_stats(const float* logits, int32_t vocab, const SamplingTransform& sampling,
                           const SaguaroParams& saguaro, RowScratch& scratch, double* lanes) {
  RowStats s{};
  const Thr all = thr_all();
  s.keep_l = s.top_l = all.l;
  s.keep_i = s.top_i = all.i;
  s.saguaro_c = 1.0f;
  s.argmax = row_argmax(logits, vocab);
  s.lmax = logits[s.argmax];
  const float inv_t = sampling.temperature > 0.0f ? 1.0f / sampling.temperature : 0.0f;
  if (sampling.temperature == 0.0f || !(inv_t <= 3.4e38f)) {
    s.greedy = 1;
    s.z = s.inv_z = 1.0;
    if (lanes)
      for (int i = 0; i < kLanes; ++i) lanes[i] = 0.0;
    return s;
  }
  s.inv_t = inv_t;
  if (sampling.top_k > 0 && sampling.top_k < vocab) {
    const Thr k = select_count(logits, vocab, all, sampling.top_k, scratch);
    s.keep_l = k.l;
    s.keep_i = k.i;
  }
  if (sampling.top_p < 1.0f) {
    const double z_k = canonical_z(s, logits, vocab, nullptr);
    const Thr p = select_top_p(logits, vocab, s, kMassOne / z_k, topp_target(sampling.top_p), scratch);
    s.keep_l = p.l;
    s.keep_i = p.i;
  }
  if (saguaro.c < 1.0f && saguaro.fanout > 0) {
    const Thr f = select_count(logits, vocab, Thr{s.keep_l, s.keep_i}, saguaro.fanout, scratch);
    s.top_l = f.l;
    s.top_i = f.i;
    s.saguaro = 1;
    s.saguaro_c = saguaro.c;
  }
  double z = canonical_z(s, logits, vocab, lanes);
  if (s.saguaro && !(z > 0.0)) {  // C == 0 and the top set is the whole support: q' = q
    s.saguaro = 0;
    s.saguaro_c = 1.0f;
    s.top_l = all.l;
    s.top_i = all.i;
    z = canonical_z(s, logits, vocab, lanes);
  }
  s.z = z;
  s.inv_z = 1.0 / z;
  return s;
}

int32_t sample_row(const RowStats& s, const float* logits, int32_t vocab, const double* lanes, double u) {
  if (s.greedy) return s.argmax;
  alignas(64) double own[kLanes];
  if (!lanes) {
    canonical_z(s, logits, vocab, own);
    lanes = own;
  }
  const int32_t t =
      sample_by_lanes(lanes, vocab, u, [&](int32_t i) { return token_weight(s, logits[i], i); });
  return t < 0 ? s.argmax : t;
}

SSD_VECTOR_CLONES int32_t sample_residual(const RowStats& p, const float* p_logits, const RowStats* q,
                                          const float* q_logits, int32_t onehot_token, int32_t vocab, double u) {
  alignas(64) double lanes[kLanes];
  int32_t t;
  if (q && !p.greedy && !q->greedy) {  // the common case, without the greedy branches (vectorises)
    const RowStats qs = *q;
    const auto weight = [&](int32_t i) {
      return residual_weight(token_weight(p, p_logits[i], i) * p.inv_z, token_weight(qs, q_logits[i], i) * qs.inv_z);
    };
    canonical_lane_sums(vocab, weight, lanes);
    t = sample_by_lanes(lanes, vocab, u, weight);
  } else {
    const auto weight = [&](int32_t i) {
      const double pt = token_prob(p, p_logits[i], i);
      const double qt = q ? token_prob(*q, q_logits[i], i) : (i == onehot_token ? 1.0 : 0.0);
      return residual_weight(pt, qt);
    };
    canonical_lane_sums(vocab, weight, lanes);
    t = sample_by_lanes(lanes, vocab, u, weight);
  }
  return t >= 0 ? t : sample_row(p, p_logits, vocab, nullptr, u);
}

SSD_VECTOR_CLONES void write_row_probs(const RowStats& s, const float* logits, int32_t vocab, float* out) {
  for (int32_t t = 0; t < vocab; ++t) out[t] = static_cast<float>(token_prob(s, logits[t], t));
}

}  // namespace ssd
