// cpu_linear.cpp: see cpu_linear.h.
#include "cpu_linear.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <stdexcept>
#include <string>

#ifdef SSD_X86_KERNELS
#include <immintrin.h>
#endif

namespace ssd {
namespace {

constexpr int64_t kLanes = 8;

inline int64_t w_stride(const CpuLinearArgs& a) { return a.w_stride ? a.w_stride : a.k; }

// Finishes one output element from its folded sum: K % 8 tail, bias. Identical for every path.
inline void finish(const CpuLinearArgs& a, float s, int64_t r, int64_t c, int64_t k8) {
  const float* w = a.w + c * w_stride(a);
  const float* x = a.x + r * a.x_stride;
  for (int64_t i = k8; i < a.k; ++i) s = std::fma(w[i], x[i], s);
  a.y[r * a.y_stride + c] = a.bias ? s + a.bias[c] : s;
}

void linear_portable(const CpuLinearArgs& a) {
  const int64_t k8 = a.k - a.k % kLanes;
  for (int64_t r = 0; r < a.m; ++r)
    for (int64_t c = 0; c < a.n; ++c) {
      const float* w = a.w + c * w_stride(a);
      const float* x = a.x + r * a.x_stride;
      float l[kLanes] = {0, 0, 0, 0, 0, 0, 0, 0};
      for (int64_t i = 0; i < k8; i += kLanes)
        for (int64_t q = 0; q < kLanes; ++q) l[q] = std::fma(w[i + q], x[i + q], l[q]);
      finish(a, ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7])), r, c, k8);
    }
}

#ifdef SSD_X86_KERNELS
// Folds four accumulators at once, each in the order of linear_portable.
__attribute__((target("avx2,fma"))) inline __m128 fold4(__m256 a, __m256 b, __m256 c, __m256 d) {
  const __m256 abcd = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
  return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

// Output rows [r, r + R) x columns [c, c + C): one accumulator per element, K walked in order. Weight
// loads are memory operands of the FMAs, so R * C + 1 <= 16 registers suffice.
template <int R, int C>
__attribute__((target("avx2,fma"))) void tile(const CpuLinearArgs& a, int64_t r, int64_t c) {
  const int64_t k8 = a.k - a.k % kLanes, ws = w_stride(a);
  __m256 acc[R][C];
  _Pragma("GCC unroll 16") for (int i = 0; i < R; ++i)
    _Pragma("GCC unroll 16") for (int j = 0; j < C; ++j) acc[i][j] = _mm256_setzero_ps();
  for (int64_t p = 0; p < k8; p += kLanes) {
    _Pragma("GCC unroll 16") for (int i = 0; i < R; ++i) {
      const __m256 xv = _mm256_loadu_ps(a.x + (r + i) * a.x_stride + p);
      _Pragma("GCC unroll 16") for (int j = 0; j < C; ++j)
        acc[i][j] = _mm256_fmadd_ps(_mm256_loadu_ps(a.w + (c + j) * ws + p), xv, acc[i][j]);
    }
  }
  const __m256 zero = _mm256_setzero_ps();
  _Pragma("GCC unroll 16") for (int i = 0; i < R; ++i)
    _Pragma("GCC unroll 16") for (int j = 0; j < C; j += 4) {
      alignas(16) float sums[4];
      _mm_store_ps(sums, fold4(acc[i][j], j + 1 < C ? acc[i][j + 1] : zero, j + 2 < C ? acc[i][j + 2] : zero,
                               j + 3 < C ? acc[i][j + 3] : zero));
      for (int q = 0; q < 4 && j + q < C; ++q) finish(a, sums[q], r + i, c + j + q, k8);
    }
}

template <int R, int C>
__attribute__((target("avx2,fma"))) void row_chunk(const CpuLinearArgs& a, int64_t r) {
  int64_t c = 0;
  for (; c + C <= a.n; c += C) tile<R, C>(a, r, c);
  for (; c < a.n; ++c) tile<R, 1>(a, r, c);
}

__attribute__((target("avx2,fma"))) void linear_avx2(const CpuLinearArgs& a) {
  for (int64_t r = 0; r < a.m; r += 3) {
    switch (std::min<int64_t>(a.m - r, 3)) {
      case 1: row_chunk<1, 8>(a, r); break;
      case 2: row_chunk<2, 6>(a, r); break;
      default: row_chunk<3, 4>(a, r); break;
    }
  }
}

bool detect_avx2() { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }
// libgcc's and compiler-rt's checks include the OS's support for the AVX-512 register state.
bool detect_avx512() {
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
         __builtin_cpu_supports("avx512bw");
}
#else
bool detect_avx2() { return false; }
bool detect_avx512() { return false; }
#endif

// `name`=1 (any value but empty or 0) switches a path off: SSD_DISABLE_AVX2 selects the portable loops,
// SSD_DISABLE_AVX512 the AVX2 tiles of packed_linear.cpp; for tests of those paths on machines that have
// the instructions, and for comparing them.
bool disabled_by_env(const char* name) {
  const char* v = std::getenv(name);
  return v && *v && std::string(v) != "0";
}

void check_args(const CpuLinearArgs& a) {
  const auto fail = [](const std::string& what) { throw std::invalid_argument("cpu_linear: " + what); };
  if (a.m < 0 || a.n < 0 || a.k < 0)
    fail("negative size m=" + std::to_string(a.m) + " n=" + std::to_string(a.n) + " k=" + std::to_string(a.k));
  if (a.m == 0 || a.n == 0) return;
  if (!a.x || !a.w || !a.y) fail("null x, w or y pointer");
  if (a.m > 1 && a.x_stride < a.k) fail("x row stride " + std::to_string(a.x_stride) + " < k=" + std::to_string(a.k));
  if (a.n > 1 && a.w_stride != 0 && a.w_stride < a.k)
    fail("w row stride " + std::to_string(a.w_stride) + " < k=" + std::to_string(a.k));
  if (a.m > 1 && a.y_stride < a.n) fail("y row stride " + std::to_string(a.y_stride) + " < n=" + std::to_string(a.n));
}

}  // namespace

bool cpu_linear_uses_avx2() {
  static const bool avx2 = detect_avx2() && !disabled_by_env("SSD_DISABLE_AVX2");
  return avx2;
}

bool cpu_linear_uses_avx512() {
  static const bool avx512 =
      cpu_linear_uses_avx2() && detect_avx512() && !disabled_by_env("SSD_DISABLE_AVX512");
  return avx512;
}

const char* cpu_kernel_isa() {
  return cpu_linear_uses_avx512() ? "avx512" : cpu_linear_uses_avx2() ? "avx2" : "portable";
}

void cpu_linear(const CpuLinearArgs& args) {
  check_args(args);
  if (args.m == 0 || args.n == 0) return;
#ifdef SSD_X86_KERNELS
  if (cpu_linear_uses_avx2()) return linear_avx2(args);
#endif
  linear_portable(args);
}

void cpu_linear_reference(const CpuLinearArgs& a) {
  check_args(a);
  for (int64_t r = 0; r < a.m; ++r)
    for (int64_t c = 0; c < a.n; ++c) {
      double s = a.bias ? a.bias[c] : 0.0;
      for (int64_t i = 0; i < a.k; ++i) s += static_cast<double>(a.w[c * w_stride(a) + i]) * a.x[r * a.x_stride + i];
      a.y[r * a.y_stride + c] = static_cast<float>(s);
    }
}

}  // namespace ssd
