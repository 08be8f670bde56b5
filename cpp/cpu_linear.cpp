// cpu_linear.cpp: see cpu_linear.h.
#include "cpu_linear.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define SSD_CPU_LINEAR_X86 1
#endif

namespace ssd {
namespace {

constexpr int64_t kLanes = 8;

inline int64_t w_stride(const CpuLinearArgs& a) { return a.w_stride ? a.w_stride : a.k; }

inline float widen(float v) { return v; }
inline float widen(uint16_t bits) {
  const uint32_t u = static_cast<uint32_t>(bits) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
template <class W>
const W* weights(const CpuLinearArgs& a);
template <>
const float* weights<float>(const CpuLinearArgs& a) { return a.w; }
template <>
const uint16_t* weights<uint16_t>(const CpuLinearArgs& a) { return a.w_bf16; }

// ---- portable path: the same per-element order (8 lane sums, fixed fold, tail, bias) ----------------
template <class W>
float dot_portable(const W* w, const float* x, int64_t k) {
  float lane[kLanes] = {0, 0, 0, 0, 0, 0, 0, 0};
  const int64_t k8 = k - k % kLanes;
  for (int64_t i = 0; i < k8; i += kLanes)
    for (int64_t l = 0; l < kLanes; ++l) lane[l] += widen(w[i + l]) * x[i + l];
  float s = ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
  for (int64_t i = k8; i < k; ++i) s += widen(w[i]) * x[i];
  return s;
}

template <class W>
void linear_portable(const CpuLinearArgs& a) {
  for (int64_t r = 0; r < a.m; ++r)
    for (int64_t c = 0; c < a.n; ++c) {
      const float s = dot_portable(weights<W>(a) + c * w_stride(a), a.x + r * a.x_stride, a.k);
      a.y[r * a.y_stride + c] = a.bias ? s + a.bias[c] : s;
    }
}

#ifdef SSD_CPU_LINEAR_X86
// ---- AVX2 + FMA path ----------------------------------------------------------------------------------
// Folds up to four accumulators at once; each element's 8 lanes are summed in the one order
// ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)) whatever the other three are (dot_portable's order).
__attribute__((target("avx2,fma"))) inline __m128 fold4(__m256 a, __m256 b, __m256 c, __m256 d) {
  const __m256 abcd = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
  return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

// Finishes one output element from its folded sum: K % 8 tail, bias. Identical for every tile shape.
template <class W>
inline void finish(const CpuLinearArgs& a, float s, int64_t r, int64_t c, int64_t k8) {
  const W* w = weights<W>(a) + c * w_stride(a);
  const float* x = a.x + r * a.x_stride;
  for (int64_t i = k8; i < a.k; ++i) s = std::fma(widen(w[i]), x[i], s);
  a.y[r * a.y_stride + c] = a.bias ? s + a.bias[c] : s;
}

// Writes the C outputs of row r held in acc (columns c..c+C), four folds at a time.
template <int C, class W>
__attribute__((target("avx2,fma"))) inline void finish_row(const CpuLinearArgs& a, const __m256* acc, int64_t r,
                                                           int64_t c, int64_t k8) {
  const __m256 zero = _mm256_setzero_ps();
  for (int j = 0; j < C; j += 4) {
    alignas(16) float sums[4];
    _mm_store_ps(sums, fold4(acc[j], j + 1 < C ? acc[j + 1] : zero, j + 2 < C ? acc[j + 2] : zero,
                             j + 3 < C ? acc[j + 3] : zero));
    for (int q = 0; q < 4 && j + q < C; ++q) finish<W>(a, sums[q], r, c + j + q, k8);
  }
}

__attribute__((target("avx2,fma"))) inline __m256 load8(const float* w) { return _mm256_loadu_ps(w); }
__attribute__((target("avx2,fma"))) inline __m256 load8(const uint16_t* w) {
  const __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w)));
  return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
}

template <int R, int C, class W>
__attribute__((target("avx2,fma"))) void tile(const CpuLinearArgs& a, int64_t r, int64_t c) {
  const int64_t k8 = a.k - a.k % kLanes, ws = w_stride(a);
  __m256 acc[R][C];
  for (int i = 0; i < R; ++i)
    for (int j = 0; j < C; ++j) acc[i][j] = _mm256_setzero_ps();
  const W* w[C];
  const float* x[R];
  for (int j = 0; j < C; ++j) w[j] = weights<W>(a) + (c + j) * ws;
  for (int i = 0; i < R; ++i) x[i] = a.x + (r + i) * a.x_stride;
  const bool prefetch = r == 0 && c + 3 * C <= a.n;
  for (int64_t p = 0; p < k8; p += kLanes) {
    if (prefetch && p % (64 / sizeof(W)) == 0)
      for (int j = 0; j < C; ++j) _mm_prefetch(reinterpret_cast<const char*>(w[j] + 2 * C * ws + p), _MM_HINT_T0);
    __m256 wv[C];
    for (int j = 0; j < C; ++j) wv[j] = load8(w[j] + p);
    for (int i = 0; i < R; ++i) {
      const __m256 xv = _mm256_loadu_ps(x[i] + p);
      for (int j = 0; j < C; ++j) acc[i][j] = _mm256_fmadd_ps(wv[j], xv, acc[i][j]);
    }
  }
  for (int i = 0; i < R; ++i) finish_row<C, W>(a, acc[i], r + i, c, k8);
}

// Rows [r, r + R) against weight rows [c0, c1): tiles of C weight rows (R * C <= 12 accumulators,
// enough independent FMA chains to hide their latency), then single rows.
template <int R, int C, class W>
__attribute__((target("avx2,fma"))) void row_chunk(const CpuLinearArgs& a, int64_t r, int64_t c0, int64_t c1) {
  int64_t c = c0;
  for (; c + C <= c1; c += C) tile<R, C, W>(a, r, c);
  for (; c < c1; ++c) tile<R, 1, W>(a, r, c);
}

// A panel of weight rows stays in L1/L2 while every chunk of up to 6 activation rows passes over it, so
// up to 6 rows cost one pass over the weights (decode, verification up to K = 5, small trees).
template <class W>
__attribute__((target("avx2,fma"))) void linear_avx2(const CpuLinearArgs& a) {
  constexpr int64_t kPanel = 48;
  for (int64_t c0 = 0; c0 < a.n; c0 += kPanel) {
    const int64_t c1 = std::min(a.n, c0 + kPanel);
    for (int64_t r = 0; r < a.m; r += 6) {
      switch (std::min<int64_t>(a.m - r, 6)) {
        case 1: row_chunk<1, 8, W>(a, r, c0, c1); break;
        case 2: row_chunk<2, 6, W>(a, r, c0, c1); break;
        case 3: row_chunk<3, 4, W>(a, r, c0, c1); break;
        case 4: row_chunk<4, 3, W>(a, r, c0, c1); break;
        case 5: row_chunk<5, 2, W>(a, r, c0, c1); break;
        default: row_chunk<6, 2, W>(a, r, c0, c1); break;
      }
    }
  }
}

bool detect_avx2() { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }
#else
bool detect_avx2() { return false; }
#endif

void check_args(const CpuLinearArgs& a) {
  const auto fail = [](const std::string& what) { throw std::invalid_argument("cpu_linear: " + what); };
  if (a.m < 0 || a.n < 0 || a.k < 0)
    fail("negative size m=" + std::to_string(a.m) + " n=" + std::to_string(a.n) + " k=" + std::to_string(a.k));
  if (a.m == 0 || a.n == 0) return;
  if (!a.x || !a.y || (!a.w) == (!a.w_bf16)) fail("null x or y pointer, or not exactly one of w and w_bf16");
  if (a.m > 1 && a.x_stride < a.k)
    fail("x row stride " + std::to_string(a.x_stride) + " < k=" + std::to_string(a.k));
  if (a.n > 1 && a.w_stride != 0 && a.w_stride < a.k)
    fail("w row stride " + std::to_string(a.w_stride) + " < k=" + std::to_string(a.k));
  if (a.m > 1 && a.y_stride < a.n)
    fail("y row stride " + std::to_string(a.y_stride) + " < n=" + std::to_string(a.n));
}

}  // namespace

bool cpu_linear_uses_avx2() {
  static const bool avx2 = detect_avx2();
  return avx2;
}

void cpu_linear(const CpuLinearArgs& args) {
  check_args(args);
  if (args.m == 0 || args.n == 0) return;
#ifdef SSD_CPU_LINEAR_X86
  if (cpu_linear_uses_avx2()) return args.w ? linear_avx2<float>(args) : linear_avx2<uint16_t>(args);
#endif
  if (args.w) return linear_portable<float>(args);
  linear_portable<uint16_t>(args);
}

bool bf16_exact(const float* w, int64_t count, uint16_t* out) {
  for (int64_t i = 0; i < count; ++i) {
    uint32_t u;
    std::memcpy(&u, w + i, sizeof u);
    if (u & 0xFFFFu) return false;
    if (out) out[i] = static_cast<uint16_t>(u >> 16);
  }
  return true;
}

void cpu_linear_reference(const CpuLinearArgs& a) {
  check_args(a);
  for (int64_t r = 0; r < a.m; ++r)
    for (int64_t c = 0; c < a.n; ++c) {
      double s = a.bias ? a.bias[c] : 0.0;
      for (int64_t i = 0; i < a.k; ++i) {
        const int64_t at = c * w_stride(a) + i;
        s += static_cast<double>(a.w ? a.w[at] : widen(a.w_bf16[at])) * a.x[r * a.x_stride + i];
      }
      a.y[r * a.y_stride + c] = static_cast<float>(s);
    }
}

}  // namespace ssd
