// block_row_stats.cuh: block-level (256 threads) device building blocks of the verification kernels.
//
// Each function is called by all 256 threads of a block with identical arguments and returns the same value
// to every thread. Together they compute, for one logits row, exactly the RowStats that the CPU reference
// (cpp/distribution.cpp) computes, and sample exactly the token it samples:
//   block_max_key      argmax in the token order (max of token_key)
//   block_lane_sum     canonical sum: thread i is lane i (tokens i, i+256, ...), then the fixed tree
//   block_select       the token where the cumulative (integer) weight in token order first reaches a target,
//                      by an 8-bit radix descent over the 64-bit token keys with per-warp integer histograms
//                      (integer sums: the order of atomic adds cannot change the result)
//   block_row_stats    temperature -> top-k -> top-p -> Saguaro -> z (same steps as compute_row_stats)
//   block_sample       inverse CDF over the canonical lane order (same as sample_by_lanes)
// Only the math of cpp/sampling_math.h is used on values; --fmad=false keeps roundings identical.
#pragma once

#include <cstdint>

#include "sampling_math.h"
#include "sampling_transform.h"

namespace ssd {
namespace cuda_detail {

constexpr int kThreads = kLanes;  // 256: one thread per canonical lane
constexpr int kWarps = kThreads / 32;
constexpr int kWalkChunk = 1024;

struct BlockShared {
  double lanes[kLanes];
  union {
    struct {
      unsigned long long mass[kWarps][256];
      unsigned int count[kWarps][256];
    } hist;
    double walk[kWalkChunk];
    unsigned long long keys[kWarps];
  } u;
  unsigned long long sel_prefix, sel_mask, sel_above, sel_key;
  int sel_state;  // 0 continue, 1 found (sel_key), 2 keep all, 3 unique bucket: find it
  int pick_lane;
  double pick_before, pick_target;
  int found;
  int seq_mode, seq_accept, seq_token;  // verify_seq_block's decision, broadcast from thread 0
};

// Max of v over the block, returned to every thread.
__device__ inline unsigned long long block_max_u64(unsigned long long v, BlockShared& sh) {
  for (int off = 16; off > 0; off >>= 1) {
    const unsigned long long o = __shfl_down_sync(0xFFFFFFFFu, v, off);
    v = o > v ? o : v;
  }
  if ((threadIdx.x & 31) == 0) sh.u.keys[threadIdx.x >> 5] = v;
  __syncthreads();
  if (threadIdx.x == 0) {
    unsigned long long m = sh.u.keys[0];
    for (int w = 1; w < kWarps; ++w) m = sh.u.keys[w] > m ? sh.u.keys[w] : m;
    sh.sel_key = m;
  }
  __syncthreads();
  const unsigned long long result = sh.sel_key;
  __syncthreads();
  return result;
}

__device__ inline unsigned long long block_max_key(const float* row, int vocab, BlockShared& sh) {
  unsigned long long best = 0;
  for (int t = threadIdx.x; t < vocab; t += kThreads) {
    const unsigned long long k = token_key(row[t], t);
    best = k > best ? k : best;
  }
  return block_max_u64(best, sh);
}

// Canonical sum of weight(t); leaves the per-lane sums (before the tree) in lanes_out when non-null.
template <class Weight>
__device__ double block_lane_sum(int vocab, const Weight& weight, BlockShared& sh, double* lanes_out = nullptr) {
  double acc = 0.0;
  for (int t = threadIdx.x; t < vocab; t += kThreads) acc += weight(t);
  sh.lanes[threadIdx.x] = acc;
  if (lanes_out) lanes_out[threadIdx.x] = acc;
  __syncthreads();
  for (int s = kLanes / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) sh.lanes[threadIdx.x] += sh.lanes[threadIdx.x + s];
    __syncthreads();
  }
  const double z = sh.lanes[0];
  __syncthreads();
  return z;
}

struct SelectResult {
  bool all;  // fewer candidates / less total weight than the target: keep every candidate
  unsigned long long key;
};

// One radix pass: per-bin integer weight and count of the candidates whose key matches prefix under mask,
// binned by the 8 bits at `shift`; the per-warp histograms are folded into hist.*[0]. Run-length aggregation
// keeps shared-memory atomics rare (a thread's consecutive tokens often share a bin).
template <class Weight>
__device__ void block_histogram(const float* row, int vocab, float cand_l, int32_t cand_i, unsigned long long prefix,
                                unsigned long long mask, int shift, const Weight& weight, BlockShared& sh) {
  for (int j = threadIdx.x; j < kWarps * 256; j += kThreads) {
    (&sh.u.hist.mass[0][0])[j] = 0;
    (&sh.u.hist.count[0][0])[j] = 0;
  }
  __syncthreads();
  const int warp = threadIdx.x >> 5;
  int cur = -1;
  unsigned long long cur_w = 0;
  unsigned int cur_c = 0;
  for (int t = threadIdx.x; t < vocab; t += kThreads) {
    const float l = row[t];
    if (!ranks_at_or_above(l, t, cand_l, cand_i)) continue;
    const unsigned long long key = token_key(l, t);
    if ((key & mask) != prefix) continue;
    const int bin = static_cast<int>((key >> shift) & 255u);
    if (bin != cur) {
      if (cur_c) {
        atomicAdd(&sh.u.hist.mass[warp][cur], cur_w);
        atomicAdd(&sh.u.hist.count[warp][cur], cur_c);
      }
      cur = bin;
      cur_w = 0;
      cur_c = 0;
    }
    cur_w += weight(l, t);
    cur_c += 1;
  }
  if (cur_c) {
    atomicAdd(&sh.u.hist.mass[warp][cur], cur_w);
    atomicAdd(&sh.u.hist.count[warp][cur], cur_c);
  }
  __syncthreads();
  unsigned long long m = 0;
  unsigned int c = 0;
  for (int w = 0; w < kWarps; ++w) {
    m += sh.u.hist.mass[w][threadIdx.x];
    c += sh.u.hist.count[w][threadIdx.x];
  }
  sh.u.hist.mass[0][threadIdx.x] = m;  // each thread folds its own bin: no race
  sh.u.hist.count[0][threadIdx.x] = c;
  __syncthreads();
}

// Thread 0, after block_histogram: descend into the bin (highest first) where the weight of everything
// before it (`above`) plus the bin's reaches `need`; publish the new prefix and the state in sh.
__device__ inline void descend_bin(unsigned long long prefix, unsigned long long mask, unsigned long long above,
                                   int shift, unsigned long long need, BlockShared& sh) {
  int chosen = -1;
  for (int b = 255; b >= 0; --b) {
    if (sh.u.hist.count[0][b] == 0) continue;
    if (above + sh.u.hist.mass[0][b] >= need) {
      chosen = b;
      break;
    }
    above += sh.u.hist.mass[0][b];
  }
  int state = 0;
  if (chosen < 0) {
    state = 2;  // total below need (only possible at the first pass): keep every candidate
  } else {
    prefix |= static_cast<unsigned long long>(chosen) << shift;
    mask |= 0xFFull << shift;
    if (shift == 0) {
      state = 1;
      sh.sel_key = prefix;
    } else if (sh.u.hist.count[0][chosen] == 1) {
      state = 3;  // a single candidate left: find it directly
    }
  }
  sh.sel_prefix = prefix;
  sh.sel_mask = mask;
  sh.sel_above = above;
  sh.sel_state = state;
}

// Among candidates (tokens at or above (cand_l, cand_i)) with integer weights weight(l, t), the token at
// which the cumulative weight in token order first reaches `need`.
template <class Weight>
__device__ SelectResult block_select(const float* row, int vocab, float cand_l, int32_t cand_i,
                                     unsigned long long need, const Weight& weight, BlockShared& sh) {
  unsigned long long prefix = 0, mask = 0, above = 0;
  int state = 0;
  for (int shift = 56; shift >= 0 && state == 0; shift -= 8) {
    block_histogram(row, vocab, cand_l, cand_i, prefix, mask, shift, weight, sh);
    if (threadIdx.x == 0) descend_bin(prefix, mask, above, shift, need, sh);
    __syncthreads();
    prefix = sh.sel_prefix;
    mask = sh.sel_mask;
    above = sh.sel_above;
    state = sh.sel_state;
  }
  if (state == 3) {  // exactly one candidate carries the prefix: it is the answer
    for (int t = threadIdx.x; t < vocab; t += kThreads) {
      const float l = row[t];
      if (!ranks_at_or_above(l, t, cand_l, cand_i)) continue;
      const unsigned long long key = token_key(l, t);
      if ((key & mask) == prefix) sh.sel_key = key;
    }
    __syncthreads();
  }
  SelectResult r{state == 2, sh.sel_key};
  __syncthreads();
  return r;
}

// The RowStats of one row (every thread gets the same copy). Mirrors compute_row_stats step by step.
__device__ inline RowStats block_row_stats(const float* row, int vocab, const SamplingTransform& sp,
                                           const SaguaroParams& sg, BlockShared& sh) {
  RowStats s{};
  s.keep_l = s.top_l = neg_inf_f();
  s.keep_i = s.top_i = kMaxIndex;
  s.saguaro_c = 1.0f;
  const unsigned long long best = block_max_key(row, vocab, sh);
  s.argmax = key_index(best);
  s.lmax = row[s.argmax];
  const float inv_t = sp.temperature > 0.0f ? 1.0f / sp.temperature : 0.0f;
  if (sp.temperature == 0.0f || !(inv_t <= 3.4e38f)) {
    s.greedy = 1;
    s.z = s.inv_z = 1.0;
    return s;
  }
  s.inv_t = inv_t;
  const auto count_one = [](float, int32_t) -> unsigned long long { return 1ull; };
  if (sp.top_k > 0 && sp.top_k < vocab) {
    const SelectResult r = block_select(row, vocab, s.keep_l, s.keep_i, static_cast<unsigned long long>(sp.top_k),
                                        count_one, sh);
    if (!r.all) {
      s.keep_l = key_logit(r.key);
      s.keep_i = key_index(r.key);
    }
  }
  if (sp.top_p < 1.0f) {
    const RowStats sk = s;
    const double z_k = block_lane_sum(vocab, [&](int32_t t) { return token_weight(sk, row[t], t); }, sh);
    const double scale = kMassOne / z_k;
    const auto mass = [&](float l, int32_t) -> unsigned long long {
      return topp_mass(base_weight(l, sk.lmax, sk.inv_t), scale);
    };
    const SelectResult r = block_select(row, vocab, s.keep_l, s.keep_i, topp_target(sp.top_p), mass, sh);
    if (!r.all) {
      s.keep_l = key_logit(r.key);
      s.keep_i = key_index(r.key);
    }
  }
  if (sg.c < 1.0f && sg.fanout > 0) {
    const SelectResult r = block_select(row, vocab, s.keep_l, s.keep_i, static_cast<unsigned long long>(sg.fanout),
                                        count_one, sh);
    s.top_l = r.all ? s.keep_l : key_logit(r.key);
    s.top_i = r.all ? s.keep_i : key_index(r.key);
    s.saguaro = 1;
    s.saguaro_c = sg.c;
  }
  const RowStats sz = s;
  double z = block_lane_sum(vocab, [&](int32_t t) { return token_weight(sz, row[t], t); }, sh);
  if (s.saguaro && !(z > 0.0)) {
    s.saguaro = 0;
    s.saguaro_c = 1.0f;
    s.top_l = neg_inf_f();
    s.top_i = kMaxIndex;
    const RowStats s2 = s;
    z = block_lane_sum(vocab, [&](int32_t t) { return token_weight(s2, row[t], t); }, sh);
  }
  s.z = z;
  s.inv_z = 1.0 / z;
  return s;
}

// Inverse-CDF sample of weight(t) over the canonical lane order; -1 when all weights are 0.
template <class Weight>
__device__ int32_t block_sample(int vocab, double u, const Weight& weight, BlockShared& sh) {
  double acc = 0.0;
  for (int t = threadIdx.x; t < vocab; t += kThreads) acc += weight(t);
  sh.lanes[threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.x == 0) {
    const double target = u * lanes_total(sh.lanes);
    const LanePick pick = pick_lane(sh.lanes, target);
    sh.pick_lane = pick.lane;
    sh.pick_before = pick.before;
    sh.pick_target = target;
    sh.found = -1;
  }
  __syncthreads();
  const int lane = sh.pick_lane;
  if (lane < 0) {
    __syncthreads();
    return -1;
  }
  const int n_lane = lane < vocab ? (vocab - lane + kLanes - 1) / kLanes : 0;
  LaneWalk walk{sh.pick_before, sh.pick_target, -1};  // used by thread 0 only
  for (int j0 = 0; j0 < n_lane; j0 += kWalkChunk) {
    const int n = n_lane - j0 < kWalkChunk ? n_lane - j0 : kWalkChunk;
    for (int j = threadIdx.x; j < n; j += kThreads) sh.u.walk[j] = weight(lane + kLanes * (j0 + j));
    __syncthreads();
    if (threadIdx.x == 0) {
      for (int j = 0; j < n; ++j) {
        const int32_t t = lane + kLanes * (j0 + j);
        if (lane_walk_step(walk, sh.u.walk[j], t)) {
          sh.found = t;
          break;
        }
      }
      if (sh.found < 0 && j0 + n >= n_lane) sh.found = walk.last;
    }
    __syncthreads();
    if (sh.found >= 0) break;
  }
  const int32_t result = sh.found;
  __syncthreads();
  return result;
}

}  // namespace cuda_detail
}  // namespace ssd
