// verify_blocks.cuh: the bodies of the verification / draft-sampling kernels, one 256-thread block each.
//
// Kept apart from the __global__ wrappers (verify_kernels.cu) so that cpp/tests/test_kernel_emulation.cpp can
// run these exact bodies on the CPU, with 256 std::threads per block and a barrier for __syncthreads, and
// compare them bit for bit with the CPU reference. Mirrors cpp/verifier.cpp and cpp/draft_sampler.cpp.
#pragma once

#include <cstdint>

#include "block_row_stats.cuh"

namespace ssd {
namespace cuda_detail {

// draft_rows: [B * K] pointers to the q row of each proposal (b * K + i), or null (every q one-hot).
__device__ inline bool uses_draft_rows(const float* const* draft_rows, const SeqVerifyParams& p) {
  return draft_rows != nullptr && !p.onehot && p.target.temperature != 0.0f;
}

// Block `block` of the row-statistics kernel: blocks [0, B*(K+1)) are target rows, then B*K draft rows.
__device__ inline void verify_row_stats_block(int64_t block, const float* target_logits, const float* const* draft_rows,
                                              int32_t batch, int32_t k, int32_t vocab, const SeqVerifyParams* params,
                                              const int32_t* fanout, RowStats* target_stats, RowStats* draft_stats,
                                              BlockShared& sh) {
  const int64_t target_rows = static_cast<int64_t>(batch) * (k + 1);
  int64_t r = block;
  if (r < target_rows) {
    const int b = static_cast<int>(r / (k + 1)), i = static_cast<int>(r % (k + 1));
    const SeqVerifyParams p = params[b];
    if (i > p.draft_len) return;
    const RowStats s = block_row_stats(target_logits + r * vocab, vocab, p.target, SaguaroParams{}, sh);
    if (threadIdx.x == 0) target_stats[r] = s;
    return;
  }
  r -= target_rows;
  const int b = static_cast<int>(r / k), i = static_cast<int>(r % k);
  const SeqVerifyParams p = params[b];
  if (i >= p.draft_len || !uses_draft_rows(draft_rows, p)) return;
  SaguaroParams sg;
  sg.c = p.saguaro_c;
  sg.fanout = fanout ? fanout[r] : 0;
  const RowStats s = block_row_stats(draft_rows[r], vocab, p.draft, sg, sh);
  if (threadIdx.x == 0) draft_stats[r] = s;
}

enum : int { kDecided = 0, kResidual = 1, kBonus = 2 };

// Thread 0's ratio tests for sequence b (see verify_one in cpp/verifier.cpp).
__device__ inline void ratio_tests(int b, const float* target_logits, const int64_t* tokens, const float* const* draft_rows,
                                   int32_t k, int32_t vocab, const SeqVerifyParams& p, const RowStats* target_stats,
                                   const RowStats* draft_stats, BlockShared& sh) {
  const bool greedy = p.target.temperature == 0.0f;
  const bool use_q = uses_draft_rows(draft_rows, p);
  const size_t trow0 = static_cast<size_t>(b) * (k + 1), drow0 = static_cast<size_t>(b) * k;
  int mode = kBonus, acc = p.draft_len, tok = -1;
  for (int i = 0; i < p.draft_len; ++i) {
    const int64_t s64 = tokens[drow0 + i];
    if (s64 < 0 || s64 >= vocab) {  // unvalidated garbage: rejected, never read out of bounds
      mode = kResidual;
      acc = i;
      break;
    }
    const int32_t s = static_cast<int32_t>(s64);
    const RowStats& ps = target_stats[trow0 + i];
    if (ps.greedy && greedy) {
      if (s == ps.argmax) continue;
      mode = kDecided;
      acc = i;
      tok = ps.argmax;
      break;
    }
    const double p_s = token_prob(ps, target_logits[(trow0 + i) * vocab + s], s);
    const double q_s =
        use_q ? token_prob(draft_stats[drow0 + i], draft_rows[drow0 + i][s], s) : 1.0;
    const double u = uniform01(p.seed, p.position + i, kPurposeAccept, 0);
    if (accept_proposal(u, p_s, q_s)) continue;
    mode = kResidual;
    acc = i;
    break;
  }
  sh.seq_mode = mode;
  sh.seq_accept = acc;
  sh.seq_token = tok;
}

// Block b of the sequence kernel: ratio tests on thread 0, then the residual or bonus sample by the block.
__device__ inline void verify_seq_block(int b, const float* target_logits, const int64_t* tokens,
                                        const float* const* draft_rows, int32_t k, int32_t vocab,
                                        const SeqVerifyParams* params, const RowStats* target_stats,
                                        const RowStats* draft_stats, int64_t* accept_len, int64_t* next_token,
                                        BlockShared& sh) {
  const SeqVerifyParams p = params[b];
  if (threadIdx.x == 0)
    ratio_tests(b, target_logits, tokens, draft_rows, k, vocab, p, target_stats, draft_stats, sh);
  __syncthreads();
  const int mode = sh.seq_mode, i = sh.seq_accept;
  int32_t tok = sh.seq_token;
  __syncthreads();
  const size_t trow = static_cast<size_t>(b) * (k + 1) + i, drow = static_cast<size_t>(b) * k + i;
  const RowStats ps = target_stats[trow];
  const float* prow = target_logits + trow * vocab;
  const auto p_weight = [&](int32_t t) { return token_weight(ps, prow[t], t); };
  if (mode == kBonus) {
    const double u = uniform01(p.seed, p.position + i, kPurposeBonus, 0);
    tok = ps.greedy ? ps.argmax : block_sample(vocab, u, p_weight, sh);
  } else if (mode == kResidual) {
    const int64_t s64 = tokens[drow];
    const int32_t s = (s64 >= 0 && s64 < vocab) ? static_cast<int32_t>(s64) : -1;
    const bool use_q = uses_draft_rows(draft_rows, p) && s >= 0;
    const RowStats qs = use_q ? draft_stats[drow] : ps;
    const float* qrow = use_q ? draft_rows[drow] : prow;
    const double u = uniform01(p.seed, p.position + i, kPurposeResidual, 0);
    const auto r_weight = [&](int32_t t) {
      const double pt = token_prob(ps, prow[t], t);
      const double qt = use_q ? token_prob(qs, qrow[t], t) : (t == s ? 1.0 : 0.0);
      return residual_weight(pt, qt);
    };
    tok = block_sample(vocab, u, r_weight, sh);
    if (tok < 0) tok = ps.greedy ? ps.argmax : block_sample(vocab, u, p_weight, sh);  // zero residual: p
  }
  if (tok < 0) tok = ps.argmax;
  if (threadIdx.x == 0) {
    accept_len[b] = i;
    next_token[b] = tok;
  }
}

// Block r of the draft kernel: q' of row r, its sample, and (optionally) q' itself.
__device__ inline void sample_draft_block(int64_t r, const float* logits, int32_t vocab, const DraftRowParams* params,
                                          int64_t* tokens, float* probs, BlockShared& sh) {
  const DraftRowParams p = params[r];
  const float* row = logits + r * vocab;
  const RowStats s = block_row_stats(row, vocab, p.sampling, p.saguaro, sh);
  int32_t tok = s.argmax;
  if (!s.greedy) {
    const double u = uniform01(p.seed, p.position, kPurposeDraft, 0);
    tok = block_sample(vocab, u, [&](int32_t t) { return token_weight(s, row[t], t); }, sh);
    if (tok < 0) tok = s.argmax;
  }
  if (threadIdx.x == 0) tokens[r] = tok;
  if (probs)
    for (int t = threadIdx.x; t < vocab; t += kThreads) probs[r * vocab + t] = static_cast<float>(token_prob(s, row[t], t));
}

}  // namespace cuda_detail
}  // namespace ssd
