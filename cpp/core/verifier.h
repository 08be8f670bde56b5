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

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

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

namespace verify_detail {
inline std::string seq_field(int b, const char* field) { return "sequence " + std::to_string(b) + ": " + field; }
// Whether sequence p's q rows are read (not one-hot, sampled target, the batch has draft rows).
inline bool uses_draft_rows(const VerifyBatch& vb, const SeqVerifyParams& p) {
  return vb.draft_rows != nullptr && !p.onehot && p.target.temperature != 0.0f;
}
}  // namespace verify_detail

// Checks sizes, per-sequence parameters and that every draft row verification reads is non-null (the
// arrays here are host memory; no row is read); throws std::invalid_argument. Inline (header-only core):
// the CPU reference and the CUDA kernels' host side both call it.
inline void check_verify_params(const VerifyBatch& vb) {
  if (vb.batch < 0 || vb.k < 0 || vb.vocab <= 0)
    throw std::invalid_argument("verify: sizes must be B >= 0, K >= 0, V >= 1; got B=" + std::to_string(vb.batch) +
                                " K=" + std::to_string(vb.k) + " V=" + std::to_string(vb.vocab));
  if (vb.batch > 0 && (!vb.target_logits || !vb.params || (vb.k > 0 && !vb.draft_tokens)))
    throw std::invalid_argument("verify: target_logits, draft_tokens and params must not be null");
  for (int b = 0; b < vb.batch; ++b) {
    const SeqVerifyParams& p = vb.params[b];
    check_sampling_transform(p.target, verify_detail::seq_field(b, "target"));
    check_sampling_transform(p.draft, verify_detail::seq_field(b, "draft"));
    check_saguaro_c(p.saguaro_c, verify_detail::seq_field(b, "draft"));
    if (p.draft_len < 0 || p.draft_len > vb.k)
      throw std::invalid_argument(verify_detail::seq_field(b, "draft_len") + ": got " + std::to_string(p.draft_len) +
                                  "; allowed: 0.." + std::to_string(vb.k));
    for (int i = 0; verify_detail::uses_draft_rows(vb, p) && i < p.draft_len; ++i)
      if (vb.draft_rows[static_cast<size_t>(b) * vb.k + i] == nullptr)
        throw std::invalid_argument(verify_detail::seq_field(b, "draft_rows") + "[" + std::to_string(i) + "]: null; allowed: "
                                    "the q row proposal " + std::to_string(i) + " was sampled from");
    for (int i = 0; vb.saguaro_fanout && i < vb.k; ++i)
      if (vb.saguaro_fanout[static_cast<size_t>(b) * vb.k + i] < 0)
        throw std::invalid_argument(verify_detail::seq_field(b, "saguaro_fanout") + ": got " +
                                    std::to_string(vb.saguaro_fanout[static_cast<size_t>(b) * vb.k + i]) +
                                    "; allowed: >= 0");
  }
}

// Checks that every verified token (draft_tokens[b * K + i], i < draft_len, a host array) lies in [0, V);
// throws std::invalid_argument naming the sequence, the index and the value.
inline void check_verify_tokens(const VerifyBatch& vb) {
  for (int b = 0; b < vb.batch; ++b)
    for (int i = 0; i < vb.params[b].draft_len; ++i) {
      const int64_t s = vb.draft_tokens[static_cast<size_t>(b) * vb.k + i];
      if (s < 0 || s >= vb.vocab)
        throw std::invalid_argument(verify_detail::seq_field(b, "draft_tokens") + "[" + std::to_string(i) +
                                    "]: got " + std::to_string(s) + "; allowed: 0.." + std::to_string(vb.vocab - 1));
    }
}

// Runs verification on host memory (check_verify_params, then check_verify_tokens).
void verify_cpu(const VerifyBatch& batch, const VerifyResult& result, int num_threads = 0);

}  // namespace ssd
