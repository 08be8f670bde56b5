// draft_tree.cpp: SSD pre-speculation (SSD_SPEC section 2.1): glue forward, fork, batched tree
// decode and cache population. See draft_worker.h for the slot layout and invariants.
#include <algorithm>

#include "draft_worker.h"
#include "token_mask.h"

namespace ssd {

namespace {

// One branch (j, c): the outcome "j drafted tokens accepted, then c" and the K tokens drafted after.
struct Branch {
  DraftSequence* seq = nullptr;
  int32_t j = 0;
  int32_t c = 0;
  int32_t local = 0;     // branch index within its sequence (scratch slot block)
  int32_t first_pos = 0; // logical position of c
  Speculation spec;
};

}  // namespace

// Forwards [r, s_1..s_n] of every sequence (after any decided tokens missing from the draft KV) and
// returns their logits; row0[b] is the row of r for sequence b, so g_j is row row0[b] + j.
Logits DraftWorker::glue_forward(const std::vector<DraftSequence*>& seqs, std::vector<int32_t>* row0,
                                 std::vector<char>* emptied) {
  ScopedTimer timer(stats_, Phase::kDraftGlue);
  ForwardBatchBuilder req;
  int32_t out_rows = 0;
  row0->clear();
  masker_.clear();
  for (DraftSequence* s : seqs) {
    int32_t pending = static_cast<int32_t>(s->tokens.size()) - 1;
    s->kv.resize(std::min<size_t>(s->kv.size(), pending));
    for (int32_t p = static_cast<int32_t>(s->kv.size()); p < pending; ++p) {
      req.add_row(s->tokens[p], p, s->lane, p, -1);
      s->kv.push_back(s->tokens[p]);
    }
    row0->push_back(out_rows);
    req.add_row(s->tokens[pending], pending, s->lane, pending, out_rows++);
    s->kv.push_back(s->tokens[pending]);
    for (size_t i = 0; i < s->current.tokens.size(); ++i) {
      int32_t pos = pending + 1 + static_cast<int32_t>(i);
      req.add_row(s->current.tokens[i], pos, s->lane, pos, out_rows++);
      s->kv.push_back(s->current.tokens[i]);
    }
    if (s->params.constraint <= 0) continue;
    for (int32_t j = 0; j <= static_cast<int32_t>(s->current.tokens.size()); ++j) {  // g_j follows s_1..s_j
      mask_row(*s, row0->back() + j, s->current.tokens.data(), j);
    }
  }
  req.out_rows = out_rows;
  Logits glue = req.run(*runner_, "draft");
  masker_.apply(ops_.on(glue), glue);  // constrained rows, before the fork ranks them
  std::vector<int64_t> rows, positions;  // the fork ranks these rows: they must be usable
  for (size_t b = 0; b < seqs.size(); ++b) {
    const int32_t pending = static_cast<int32_t>(seqs[b]->tokens.size()) - 1;
    const int32_t end = b + 1 < seqs.size() ? (*row0)[b + 1] : out_rows;
    for (int32_t r = (*row0)[b]; r < end; ++r) rows.push_back(r), positions.push_back(pending + 1 + (r - (*row0)[b]));
  }
  std::vector<char> masked;
  masker_.masked_flags(rows, &masked);
  check_rows_finite(ops_.on(glue), glue, rows, positions, &masked, emptied);  // rows are 0..out_rows-1
  return glue;
}

// The branches (j, c): c among the top-F_j tokens of g_j, except tokens a constrained row's mask
// forbids (they rank last, at -inf, and only come up when fewer than F_j are allowed: the target could
// never sample them, so their branches would be wasted).
static std::vector<Branch> fork_branches(const std::vector<DraftSequence*>& seqs, const Logits& glue,
                                         const std::vector<char>& emptied, const std::vector<int32_t>& row0,
                                         int32_t K, LogitsOps& ops, const RowMasker& masker) {
  std::vector<TopRequest> requests;  // (b, j) in order: the top-F_j tokens of g_j
  for (size_t b = 0; b < seqs.size(); ++b) {
    const DraftSequence* s = seqs[b];
    const auto& proposals = s->current.tokens;
    const int32_t n = static_cast<int32_t>(proposals.size());
    for (int32_t j = 0; j <= n; ++j) {
      const int32_t f = emptied[row0[b] + j] ? 0 : j < n ? s->plan[j] : s->plan[K];  // nothing to rank
      const int32_t exclude = j < n ? proposals[j] : -1;  // a rejected token has no residual mass
      requests.push_back(TopRequest{row0[b] + j, f, exclude});
    }
  }
  std::vector<std::vector<int32_t>> tops;
  ops.top_tokens(glue, requests, &tops);
  std::vector<Branch> branches;
  size_t q = 0;
  for (size_t b = 0; b < seqs.size(); ++b) {
    DraftSequence* s = seqs[b];
    const int32_t n = static_cast<int32_t>(s->current.tokens.size());
    int32_t local = 0;
    for (int32_t j = 0; j <= n; ++j) {
      const uint32_t* mask = s->params.constraint > 0 ? masker.mask_at(row0[b] + j) : nullptr;
      for (int32_t c : tops[q++]) {
        if (mask != nullptr && !mask_allows(mask, c)) continue;
        Branch br;
        br.seq = s;
        br.j = j;
        br.c = c;
        br.local = local++;
        br.first_pos = static_cast<int32_t>(s->tokens.size()) + j;
        br.spec.source = SpecSource::kCacheHit;
        branches.push_back(std::move(br));
      }
    }
  }
  return branches;
}

// Fork every g_j, decode all branches K steps (one batched forward per step), populate the cache.
void DraftWorker::tree_decode(const std::vector<DraftSequence*>& seqs, const Logits& glue,
                              const std::vector<char>& emptied,
                              const std::vector<int32_t>& row0) {
  ScopedTimer timer(stats_, Phase::kDraftTree);
  const int32_t K = config_.K;
  std::vector<Branch> branches = fork_branches(seqs, glue, emptied, row0, K, ops_.on(glue), masker_);  // glue's masks
  std::vector<Decoding> decodings(branches.size());
  for (size_t i = 0; i < branches.size(); ++i) {
    Branch& br = branches[i];
    decodings[i] = Decoding{br.seq, &br.spec, proposal_budget(*br.seq, br.j + 1), br.first_pos, &br.seq->plan, i,
                            br.seq->current.tokens.data(), br.j, br.c};
  }
  const int32_t width = 2 * K + 1;
  const int32_t max_context = config_.max_context;
  decode_steps(decodings, width, [&](Decoding& d, int32_t t, int32_t out_row, ForwardBatchBuilder* req) {
    const Branch& br = branches[d.tag];
    const int32_t prefix = static_cast<int32_t>(d.seq->tokens.size()) - 1;  // slots before r
    const int32_t scratch0 = max_context + br.local * K;
    req->add_row(t == 0 ? br.c : d.spec->tokens[t - 1], d.pos0 + t, d.seq->lane, scratch0 + t, out_row);
    req->attend_len.push_back(prefix);
    for (int32_t g = 0; g < width; ++g) {
      int32_t slot = -1;
      if (g <= br.j) slot = prefix + g;                              // glue r, s_1..s_j
      else if (g - br.j - 1 <= t) slot = scratch0 + (g - br.j - 1);  // own branch tokens
      req->extra_slots.push_back(slot);
    }
  });
  for (DraftSequence* s : seqs) cache_.begin_round(s->id);
  for (Branch& br : branches) cache_.insert(br.seq->id, br.j, br.c, std::move(br.spec));
}

}  // namespace ssd
