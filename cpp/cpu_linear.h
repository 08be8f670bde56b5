// cpu_linear.h: y = x W^T + b for a few rows of float32 activations on the CPU (decode, verification
// and tree steps: M = 1..~32 rows against a weight matrix of N rows by K columns).
//
// Why: vendor BLAS libraries treat small M badly on some CPUs (e.g. MKL on AMD: a 2-row product costs
// twice a 1-row one), which makes a (K+1)-token verification forward ~2x a decode instead of ~1x. This
// kernel streams each weight row from memory once per call and reuses it from L1 for every activation
// row, so its cost is close to a 1-row product up to a dozen rows.
//
// Invariant (batch invariance): y[m][n] depends only on x[m][:], W[n][:] and b[n], never on M, on m, or
// on the other rows, because every output element is reduced in the same fixed order (8-lane partial
// sums over K in chunks of 8, a fixed horizontal sum, then the K % 8 tail, then the bias). So a token's
// logits are bitwise the same in a 1-row decode and in a K+1-row verification. Results differ from a
// BLAS product only by float rounding.
//
// Weights may be given as bfloat16 (w_bf16): each is widened exactly to float32 before its product, so
// the result is bitwise the one for the same values stored as float32, with half the memory traffic
// (decode is bound by streaming the weights). See bf16_exact().
//
// The AVX2+FMA path is chosen at run time when the CPU has it; otherwise a portable loop with the same
// per-element guarantee. Single-threaded, reentrant: any thread may call it concurrently on distinct
// outputs; it allocates nothing.
#pragma once

#include <cstdint>

namespace ssd {

struct CpuLinearArgs {
  const float* x = nullptr;  // [m, k], row stride x_stride
  int64_t x_stride = 0;
  const float* w = nullptr;  // [n, k], row stride w_stride (0 = k)
  const uint16_t* w_bf16 = nullptr;  // instead of w: the weights as bfloat16 bit patterns (same layout)
  int64_t w_stride = 0;
  const float* bias = nullptr;  // [n] or nullptr
  float* y = nullptr;  // [m, n], row stride y_stride
  int64_t y_stride = 0;
  int64_t m = 0, n = 0, k = 0;
};

// Validates the sizes (throws std::invalid_argument naming the field) and computes y.
void cpu_linear(const CpuLinearArgs& args);

// True when the AVX2+FMA path is in use on this CPU.
bool cpu_linear_uses_avx2();

// True when every value of w[0..count) is exactly a bfloat16 (low 16 bits zero); then bf16 bits are
// written to out (when not null).
bool bf16_exact(const float* w, int64_t count, uint16_t* out);

// Reference for tests: the same product with double accumulation, no vector code.
void cpu_linear_reference(const CpuLinearArgs& args);

}  // namespace ssd
