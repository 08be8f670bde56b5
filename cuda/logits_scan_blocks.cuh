// logits_scan_blocks.cuh: block bodies (256 threads) of the small row ops the workers run on device
// logits besides verification and sampling: the fork's top-F tokens of a row, the usability check of
// a row, and token masking (structured output: -inf where a row's mask has a 0 bit). Twins of
// CpuLogitsOps::top_tokens, bad_logit_column and apply_token_mask (cpp/sampling/cpu_logits_ops.cpp,
// cpp/core/model_runner.h, cpp/core/token_mask.h), with identical results; cpp/tests/sampling/test_kernel_emulation.cpp runs
// these bodies (the *_request_block ones are the whole kernels) on the CPU and compares. Every function
// is called by all threads of a block with the same arguments.
#pragma once

#include <cstdint>

#include "block_row_stats.cuh"
#include "token_mask.h"

namespace ssd {
namespace cuda_detail {

// The `count` first tokens of row in the token order (logit desc, id asc), skipping `exclude` (-1:
// none), written to out[0..n); returns n (fewer than count only when the row has too few tokens).
__device__ inline int top_tokens_block(const float* row, int32_t vocab, int32_t count, int32_t exclude, int32_t* out,
                                       BlockShared& sh) {
  int n = 0;
  for (; n < count; ++n) {
    unsigned long long best = 0;  // no token has key 0
    for (int32_t t = threadIdx.x; t < vocab; t += kThreads) {
      bool taken = t == exclude;
      for (int i = 0; i < n; ++i) taken |= out[i] == t;
      const unsigned long long k = taken ? 0ull : token_key(row[t], t);
      best = k > best ? k : best;
    }
    best = block_max_u64(best, sh);
    if (best == 0) break;
    if (threadIdx.x == 0) out[n] = key_index(best);
    __syncthreads();
  }
  return n;
}

// bad_logit_column(row, vocab) for the block: the first NaN / +inf column, vocab when every entry is
// -inf, -1 when the row is usable; *value = row[column] when column < vocab (thread 0 writes both).
__device__ inline void find_bad_block(const float* row, int32_t vocab, int64_t* column, float* value, BlockShared& sh) {
  const float inf = bits_float(0x7F800000u);
  unsigned long long first_bad = 0, any_finite = 0;  // first_bad: max of (2^32 - c) over bad c
  for (int32_t c = threadIdx.x; c < vocab; c += kThreads) {
    const float x = row[c];
    if (!(x < inf)) {
      const unsigned long long k = 0x100000000ull - static_cast<unsigned long long>(c);
      first_bad = k > first_bad ? k : first_bad;
    }
    if (x > -inf) any_finite = 1;
  }
  first_bad = block_max_u64(first_bad, sh);
  any_finite = block_max_u64(any_finite, sh);
  if (threadIdx.x != 0) return;
  int64_t c = first_bad != 0 ? static_cast<int64_t>(0x100000000ull - first_bad) : (any_finite ? -1 : vocab);
  *column = c;
  *value = c >= 0 && c < vocab ? row[c] : 0.0f;
}

// Block q of the fork's top-F kernel: request q reads row rows[q] of logits ([*, vocab]) and writes its
// tokens to out[offsets[q] ..] (room for counts[q]) and their number to found[q].
__device__ inline void top_tokens_request_block(int64_t q, const float* logits, int32_t vocab, const int64_t* rows,
                                                const int32_t* counts, const int32_t* excludes,
                                                const int64_t* offsets, int32_t* out, int32_t* found,
                                                BlockShared& sh) {
  const int n = top_tokens_block(logits + rows[q] * vocab, vocab, counts[q], excludes[q], out + offsets[q], sh);
  if (threadIdx.x == 0) found[q] = n;
}

// Block i of the finite-check kernel: row rows[i] of logits; its bad column and value at i.
__device__ inline void find_bad_request_block(int64_t i, const float* logits, int32_t vocab, const int64_t* rows,
                                              int64_t* columns, float* values, BlockShared& sh) {
  find_bad_block(logits + rows[i] * vocab, vocab, columns + i, values + i, sh);
}

// Block i of the masking kernel: row rows[i] of logits ([*, vocab], written in place) gets -inf at every
// column whose bit in masks[i * words ..] is 0 (apply_token_mask). No barrier: each thread owns its columns.
__device__ inline void apply_mask_request_block(int64_t i, float* logits, int32_t vocab, const int64_t* rows,
                                                const uint32_t* masks, int32_t words) {
  float* row = logits + rows[i] * vocab;
  const uint32_t* mask = masks + i * static_cast<int64_t>(words);
  const float neg_inf = neg_inf_f();
  for (int32_t c = threadIdx.x; c < vocab; c += kThreads)
    if (!mask_allows(mask, c)) row[c] = neg_inf;
}

}  // namespace cuda_detail
}  // namespace ssd
