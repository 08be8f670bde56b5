// cpu_linear.h: y = x W^T + b for a few float32 rows against a row-major W, on the calling CPU thread.
//
// The attention's score pass uses it with the KV cache's key rows as W (cpu_attention.cpp): those
// change every step, so they cannot be repacked like model weights (packed_linear.h). Each weight row
// is streamed once per call and reused from L1 by every activation row.
//
// Invariant (batch invariance): y[m][n] depends only on x[m][:], W[n][:] and b[n], never on M, on m, or
// on the other rows: every output element is reduced in one fixed order (8-lane partial sums over K in
// chunks of 8, the fold ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)), then the K % 8 tail, then
// the bias), whatever tile it falls in.
//
// The AVX2+FMA path is chosen at run time when the CPU has it (and SSD_DISABLE_AVX2 is unset or 0);
// otherwise a portable loop with the same per-element guarantee. Single-threaded, reentrant,
// allocation-free: any thread may call it.
#pragma once

#include <cstdint>

// Defined where the AVX2+FMA kernels (here, packed_linear.cpp, cpu_attention.cpp) are compiled in; they
// run only when cpu_linear_uses_avx2() says the CPU has the instructions.
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define SSD_X86_KERNELS 1
#endif

namespace ssd {

struct CpuLinearArgs {
  const float* x = nullptr;  // [m, k], row stride x_stride
  int64_t x_stride = 0;
  const float* w = nullptr;  // [n, k], row stride w_stride (0 = k)
  int64_t w_stride = 0;
  const float* bias = nullptr;  // [n] or nullptr
  float* y = nullptr;  // [m, n], row stride y_stride
  int64_t y_stride = 0;
  int64_t m = 0, n = 0, k = 0;
};

// Validates the sizes (throws std::invalid_argument naming the field) and computes y.
void cpu_linear(const CpuLinearArgs& args);

// True when the AVX2+FMA paths (here and in packed_linear.cpp) are in use on this CPU.
bool cpu_linear_uses_avx2();
// True when packed_linear.cpp also uses its AVX-512VL/BW tiles (32 registers): the CPU has them and
// neither SSD_DISABLE_AVX2 nor SSD_DISABLE_AVX512 is set.
bool cpu_linear_uses_avx512();
// "avx512", "avx2" or "portable": the widest of those paths in use.
const char* cpu_kernel_isa();

// Reference for tests: the same product with double accumulation, no vector code.
void cpu_linear_reference(const CpuLinearArgs& args);

}  // namespace ssd
