// verifier.h: batched lossless verification on the CPU (SSD_SPEC sections 1, 4, 5). The reference path.
//
// For each sequence b with n = draft_len proposals s_1..s_n (row i of the target logits decides absolute
// position `position + i`):
//   target temperature 0: accept while s_i == argmax p_i; next token = argmax of the first mismatching
//                         row, or of row n (bonus). No randomness, draft logits unused.
//   otherwise:            for i = 0..n-1 accept s_i iff u * q'_i(s_i) < p_i(s_i), u keyed by
//                         (seed, position + i, ACCEPT). At the first rejection sample the recovery token
//                         from norm(max(0, p_i - q'_i)) keyed (seed, position + i, RESIDUAL). If all n are
//                         accepted sample the bonus from p_n keyed (seed, position + n, BONUS).
//   q'_i is one-hot at s_i when the sequence is `onehot` or there are no draft rows; otherwise it is the
//   draft logits row draft_rows[b * K + i] (read where it lies: the rows are never copied) transformed with the draft sampling params and Saguaro (C, F_i) - exactly what
//   sample_draft_cpu() samples from. Rows past draft_len are never read.
// Output: accept_len[b] in 0..n and next_token[b] (recovery or bonus). The CUDA kernels
// (cuda/verify_kernels.h) take the same VerifyBatch and return identical results.
//
// Thread safety: verify_cpu may be called from any thread; it uses up to num_threads std::threads
// internally (0 = default_thread_count()) and returns when all are joined. Inputs are read-only.
#pragma once

#include <cstdint>

#include "sampling_transform.h"

namespace ssd {

struct VerifyBatch {
  int32_t batch = 0;                        // B
  int32_t k = 0;                            // K (max proposals per sequence)
  int32_t vocab = 0;                        // V
  const float* target_logits = nullptr;     // [B, K+1, V], row-major contiguous
  const int64_t* draft_tokens = nullptr;    // [B, K] (may be null when K == 0)
  const float* const* draft_rows = nullptr; // [B * K] pointers to V-float q rows (proposal i of sequence b
                                            // at b * K + i; entries never read may be null), or null:
                                            // every sequence's q is one-hot
  const int32_t* saguaro_fanout = nullptr;  // [B, K] F_j per proposal, or null: all 0 (no Saguaro)
  const SeqVerifyParams* params = nullptr;  // [B]
};

struct VerifyResult {
  int64_t* accept_len = nullptr;  // [B]
  int64_t* next_token = nullptr;  // [B]
};

// Checks sizes, per-sequence parameters and that every draft row verification reads is non-null (the
// arrays here are host memory); throws std::invalid_argument.
void check_verify_params(const VerifyBatch& batch);

// Runs verification on host memory. Also checks that the verified tokens lie in [0, V).
void verify_cpu(const VerifyBatch& batch, const VerifyResult& result, int num_threads = 0);

}  // namespace ssd
