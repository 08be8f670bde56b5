// cpu_attention.cpp: see cpu_attention.h. Scores go through cpu_linear (the same per-element reduction
// order for the contiguous prefix and for scattered extra slots), softmax in float32, then a weighted
// sum of value rows.
#include "cpu_attention.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "cpu_linear.h"

#ifdef SSD_X86_KERNELS
#include <immintrin.h>
#endif

namespace ssd {

RowKeys visible_keys(const ForwardBatch& rows, int64_t r) {
  RowKeys keys;
  const int64_t own = rows.slots[r];
  if (!rows.attend_len) {
    keys.prefix = own + 1;
    return keys;
  }
  keys.prefix = rows.attend_len[r];
  const auto add = [&keys](int64_t s) {
    if (s >= keys.prefix && std::find(keys.more.begin(), keys.more.end(), s) == keys.more.end())
      keys.more.push_back(s);
  };
  if (rows.extra_slots)
    for (int64_t e = 0; e < rows.extra_width; ++e) {
      const int64_t s = rows.extra_slots[r * rows.extra_width + e];
      if (s >= 0) add(s);
    }
  add(own);
  return keys;
}

namespace {

// scores[g][j] = q_g . K[slot_j] for the `groups` query heads sharing one kv head.
void head_scores(const float* q, int64_t groups, int64_t dim, const float* keys, const RowKeys& rk, float* scores,
                 int64_t n_keys) {
  CpuLinearArgs a;
  a.x = q, a.x_stride = dim, a.m = groups, a.k = dim, a.y_stride = n_keys, a.w_stride = dim;
  a.w = keys, a.n = rk.prefix, a.y = scores;
  cpu_linear(a);
  a.n = 1;
  for (size_t j = 0; j < rk.more.size(); ++j) {
    a.w = keys + rk.more[j] * dim;
    a.y = scores + rk.prefix + static_cast<int64_t>(j);
    cpu_linear(a);
  }
}

inline int64_t key_slot(const RowKeys& rk, int64_t j) { return j < rk.prefix ? j : rk.more[j - rk.prefix]; }

// In place: scaled, windowed, exponentiated scores; returns their sum.
float softmax_weights(float* s, int64_t n_keys, float scale, const CpuKvCache& kv, int64_t lane, int64_t q_pos,
                      int64_t window, const RowKeys& rk) {
  float top = -std::numeric_limits<float>::infinity();
  for (int64_t j = 0; j < n_keys; ++j) {
    s[j] *= scale;
    if (window > 0) {
      const int64_t slot = key_slot(rk, j);
      const int64_t k_pos = kv.slot_pos ? kv.slot_pos[lane * kv.max_slots + slot] : slot;
      if (q_pos - k_pos >= window) s[j] = -std::numeric_limits<float>::infinity();
    }
    top = std::max(top, s[j]);
  }
  float sum = 0.f;
  for (int64_t j = 0; j < n_keys; ++j) {
    s[j] = std::exp(s[j] - top);
    sum += s[j];
  }
  return sum;
}

void weighted_sum_portable(const float* p, const float* values, int64_t dim, const RowKeys& rk, int64_t n_keys,
                           float* out) {
  std::fill(out, out + dim, 0.f);
  for (int64_t j = 0; j < n_keys; ++j) {
    const float* v = values + key_slot(rk, j) * dim;
    for (int64_t d = 0; d < dim; ++d) out[d] = std::fma(p[j], v[d], out[d]);
  }
}

#ifdef SSD_X86_KERNELS
// out[d0 .. d0 + 8 * NV) = sum over keys j (in order) of p[j] * V[slot_j][d], one FMA chain per element.
template <int NV>
__attribute__((target("avx2,fma"))) void weighted_chunk(const float* p, const float* values, int64_t dim, int64_t d0,
                                                        const RowKeys& rk, int64_t n_keys, float* out) {
  __m256 acc[NV];
  _Pragma("GCC unroll 8") for (int q = 0; q < NV; ++q) acc[q] = _mm256_setzero_ps();
  for (int64_t j = 0; j < n_keys; ++j) {
    const __m256 w = _mm256_broadcast_ss(p + j);
    const float* v = values + key_slot(rk, j) * dim + d0;
    _Pragma("GCC unroll 8") for (int q = 0; q < NV; ++q) acc[q] = _mm256_fmadd_ps(w, _mm256_loadu_ps(v + 8 * q), acc[q]);
  }
  _Pragma("GCC unroll 8") for (int q = 0; q < NV; ++q) _mm256_storeu_ps(out + d0 + 8 * q, acc[q]);
}

__attribute__((target("avx2,fma"))) void weighted_sum_avx2(const float* p, const float* values, int64_t dim,
                                                           const RowKeys& rk, int64_t n_keys, float* out) {
  int64_t d = 0;
  for (; d + 64 <= dim; d += 64) weighted_chunk<8>(p, values, dim, d, rk, n_keys, out);
  for (; d < dim; d += 8) weighted_chunk<1>(p, values, dim, d, rk, n_keys, out);
}
#endif

// out = (sum over visible keys j of p[j] * V[slot_j]) / sum, each element one FMA chain in key order.
void weighted_values(const float* p, float sum, const float* values, int64_t dim, const RowKeys& rk,
                     int64_t n_keys, float* out) {
#ifdef SSD_X86_KERNELS
  if (dim % 8 == 0 && cpu_linear_uses_avx2())
    weighted_sum_avx2(p, values, dim, rk, n_keys, out);
  else
#endif
    weighted_sum_portable(p, values, dim, rk, n_keys, out);
  const float inv = 1.f / sum;
  for (int64_t d = 0; d < dim; ++d) out[d] *= inv;
}

}  // namespace

void cpu_attention(const ForwardBatch& rows, const CpuKvCache& kv, int64_t layer, int64_t heads, int64_t window,
                   const float* q, int64_t q_stride, float* out, int64_t item_begin, int64_t item_end) {
  const int64_t dim = kv.head_dim, groups = heads / kv.kv_heads;
  const float scale = 1.f / std::sqrt(static_cast<float>(dim));
  const int64_t n = static_cast<int64_t>(rows.rows);
  if (item_end < 0) item_end = n * kv.kv_heads;
  std::vector<float> scores;
  for (int64_t r = item_begin / kv.kv_heads; r < n && r * kv.kv_heads < item_end; ++r) {
    const RowKeys rk = visible_keys(rows, r);
    const int64_t n_keys = rk.prefix + static_cast<int64_t>(rk.more.size()), lane = rows.lanes[r];
    scores.resize(static_cast<size_t>(groups * n_keys));
    const int64_t g_begin = std::max<int64_t>(0, item_begin - r * kv.kv_heads);
    const int64_t g_end = std::min<int64_t>(kv.kv_heads, item_end - r * kv.kv_heads);
    for (int64_t g = g_begin; g < g_end; ++g) {
      const float* q_g = q + r * q_stride + g * groups * dim;
      head_scores(q_g, groups, dim, kv.keys(layer, lane, g), rk, scores.data(), n_keys);
      for (int64_t i = 0; i < groups; ++i) {
        float* s = scores.data() + i * n_keys;
        const float sum = softmax_weights(s, n_keys, scale, kv, lane, rows.positions[r], window, rk);
        float* o = out + r * heads * dim + (g * groups + i) * dim;
        weighted_values(s, sum, kv.values(layer, lane, g), dim, rk, n_keys, o);
      }
    }
  }
}

}  // namespace ssd
