// verifier.cpp: see verifier.h.
//
// Work plan: row statistics (normalisers, thresholds) are the expensive part (passes over V); the ratio
// test itself reads one logit per row. Rows are computed lazily per sequence (rows after a rejection are
// never touched) with sequences spread over threads. When there are fewer sequences than threads the
// rows are computed eagerly in parallel first, trading possibly wasted rows for wall time.
#include "verifier.h"

#include <vector>

#include "distribution.h"
#include "parallel_for.h"
#include "sampling_math.h"

namespace ssd {
namespace {

// Below this many logits touched, threads cost more than they save.
constexpr int64_t kMinParallelElements = 1 << 17;
// Lane sums of each sequence's bonus row are kept (saving a pass over V when all proposals are accepted)
// for batches up to this size; larger batches recompute them (bounded memory: 2 KiB per sequence).
constexpr int32_t kMaxKeptBonusLanes = 4096;

class RowCache {
 public:
  explicit RowCache(const VerifyBatch& vb)
      : vb_(vb),
        target_(static_cast<size_t>(vb.batch) * (vb.k + 1)),
        target_done_(target_.size(), 0),
        bonus_lanes_(vb.batch <= kMaxKeptBonusLanes ? static_cast<size_t>(vb.batch) * kLanes : 0),
        draft_(static_cast<size_t>(vb.batch) * vb.k),
        draft_done_(draft_.size(), 0) {}

  const float* target_row(int b, int i) const {
    return vb_.target_logits + (static_cast<size_t>(b) * (vb_.k + 1) + i) * vb_.vocab;
  }
  const float* draft_row(int b, int i) const { return vb_.draft_rows[static_cast<size_t>(b) * vb_.k + i]; }
  // Lane sums of the bonus row (row draft_len) of sequence b, or null when not kept.
  const double* bonus_lanes(int b) const {
    return bonus_lanes_.empty() ? nullptr : &bonus_lanes_[static_cast<size_t>(b) * kLanes];
  }

  const RowStats& target(int b, int i, RowScratch& sc) {
    const size_t r = static_cast<size_t>(b) * (vb_.k + 1) + i;
    if (!target_done_[r]) {
      double* lanes = i == vb_.params[b].draft_len && !bonus_lanes_.empty() ? &bonus_lanes_[b * kLanes] : nullptr;
      target_[r] = compute_row_stats(target_row(b, i), vb_.vocab, vb_.params[b].target, SaguaroParams{}, sc, lanes);
      target_done_[r] = 1;
    }
    return target_[r];
  }

  const RowStats& draft(int b, int i, RowScratch& sc) {
    const size_t r = static_cast<size_t>(b) * vb_.k + i;
    if (!draft_done_[r]) {
      SaguaroParams sg;
      sg.c = vb_.params[b].saguaro_c;
      sg.fanout = vb_.saguaro_fanout ? vb_.saguaro_fanout[r] : 0;
      draft_[r] = compute_row_stats(draft_row(b, i), vb_.vocab, vb_.params[b].draft, sg, sc, nullptr);
      draft_done_[r] = 1;
    }
    return draft_[r];
  }

 private:
  const VerifyBatch& vb_;
  std::vector<RowStats> target_;
  std::vector<uint8_t> target_done_;  // bytes, not vector<bool>: threads write distinct entries
  std::vector<double> bonus_lanes_;
  std::vector<RowStats> draft_;
  std::vector<uint8_t> draft_done_;
};

using verify_detail::uses_draft_rows;

void verify_one(const VerifyBatch& vb, int b, RowCache& cache, RowScratch& sc, const VerifyResult& out) {
  const SeqVerifyParams& p = vb.params[b];
  const int n = p.draft_len;
  const int64_t* tokens = vb.draft_tokens + static_cast<size_t>(b) * vb.k;
  const bool draft_rows = uses_draft_rows(vb, p);
  for (int i = 0; i < n; ++i) {
    const int32_t s = static_cast<int32_t>(tokens[i]);
    const RowStats& ps = cache.target(b, i, sc);
    const float* trow = cache.target_row(b, i);
    if (ps.greedy && p.target.temperature == 0.0f) {
      if (s == ps.argmax) continue;
      out.accept_len[b] = i;
      out.next_token[b] = ps.argmax;
      return;
    }
    const RowStats* qs = draft_rows ? &cache.draft(b, i, sc) : nullptr;
    const float* drow = draft_rows ? cache.draft_row(b, i) : nullptr;
    const double p_s = token_prob(ps, trow[s], s);
    const double q_s = qs ? token_prob(*qs, drow[s], s) : 1.0;
    const double u = uniform01(p.seed, p.position + i, kPurposeAccept, 0);
    if (accept_proposal(u, p_s, q_s)) continue;
    const double ur = uniform01(p.seed, p.position + i, kPurposeResidual, 0);
    out.accept_len[b] = i;
    out.next_token[b] = sample_residual(ps, trow, qs, drow, s, vb.vocab, ur);
    return;
  }
  const RowStats& ps = cache.target(b, n, sc);
  const double ub = uniform01(p.seed, p.position + n, kPurposeBonus, 0);
  out.accept_len[b] = n;
  out.next_token[b] = sample_row(ps, cache.target_row(b, n), vb.vocab, cache.bonus_lanes(b), ub);
}

}  // namespace

void verify_cpu(const VerifyBatch& vb, const VerifyResult& result, int num_threads) {
  check_verify_params(vb);
  check_verify_tokens(vb);
  if (vb.batch == 0) return;
  RowCache cache(vb);
  int threads = num_threads > 0 ? num_threads : default_thread_count();
  const int64_t rows = static_cast<int64_t>(vb.batch) * (2 * vb.k + 1);
  if (rows * vb.vocab < kMinParallelElements) threads = 1;

  if (threads > 1 && vb.batch < threads) {
    // Few sequences: compute every row that might be needed, in parallel.
    std::vector<int64_t> items;  // (b * (K + 1) + i) * 2 + is_draft
    const int64_t stride = vb.k + 1;
    for (int b = 0; b < vb.batch; ++b) {
      const SeqVerifyParams& p = vb.params[b];
      for (int i = 0; i <= p.draft_len; ++i) items.push_back((b * stride + i) * 2);
      if (uses_draft_rows(vb, p))
        for (int i = 0; i < p.draft_len; ++i) items.push_back((b * stride + i) * 2 + 1);
    }
    parallel_for(static_cast<int64_t>(items.size()), threads, [&](int64_t j) {
      thread_local RowScratch sc;
      const int64_t row = items[j] / 2;
      const int b = static_cast<int>(row / stride), i = static_cast<int>(row % stride);
      if (items[j] & 1)
        cache.draft(b, i, sc);
      else
        cache.target(b, i, sc);
    });
    threads = 1;
  }
  parallel_for(vb.batch, threads, [&](int64_t b) {
    thread_local RowScratch sc;
    verify_one(vb, static_cast<int>(b), cache, sc, result);
  });
}

}  // namespace ssd
