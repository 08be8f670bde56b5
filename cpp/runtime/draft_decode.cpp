// draft_decode.cpp: the draft's step loop, shared by jit drafting (draft_backup.cpp) and the SSD tree
// decode (draft_tree.cpp), and the draft sampler glue. See draft_worker.h.
#include <algorithm>
#include <stdexcept>

#include "draft_worker.h"

namespace ssd {

// Step t forwards one row per decoding that still drafts (its earlier rows, if any, come first: see
// StepRows), draws each decoding's next token from its logits row and appends the token, its Saguaro F
// and the row it was drawn from to the decoding's speculation. A constrained row that masking left with
// no finite entry (the grammar allows only tokens the draft cannot produce) ends its decoding there: the
// speculation is shorter, which verification handles like any other length.
void DraftWorker::decode_steps(std::vector<Decoding>& decodings, int32_t extra_width, const StepRows& rows) {
  int32_t steps = 0;
  for (Decoding& d : decodings) {
    steps = std::max(steps, d.length);
    d.spec->greedy = !needs_q(d.seq->params);
  }
  for (int32_t t = 0; t < steps; ++t) {
    ForwardBatchBuilder req;
    req.extra_width = extra_width;
    std::vector<DraftDraw> draws;
    std::vector<Decoding*> owner;
    masker_.clear();
    for (Decoding& d : decodings) {
      if (t >= d.length) continue;
      const int32_t row = static_cast<int32_t>(draws.size());
      rows(d, t, row, &req);
      if (d.seq->params.constraint > 0) {  // path: path0, the fork token, the tokens drawn so far
        mask_row(*d.seq, row, d.path0, d.n_path0);
        if (d.fork_token >= 0) masker_.extend_path(&d.fork_token, 1);
        masker_.extend_path(d.spec->tokens.data(), t);
      }
      const int32_t f = t < static_cast<int32_t>(d.plan->size()) ? (*d.plan)[t] : 0;
      draws.push_back({row, &d.seq->params, d.pos0 + t + 1, f});
      owner.push_back(&d);
    }
    if (draws.empty()) break;  // every decoding has stopped (see below)
    req.out_rows = static_cast<int32_t>(draws.size());
    Logits logits = req.run(*runner_, "draft");
    LogitsOps& ops = ops_.on(logits);
    masker_.apply(ops, logits);  // constrained rows, before they are drawn from
    std::vector<int64_t> rows_used(draws.size()), positions(draws.size());
    for (size_t i = 0; i < draws.size(); ++i) rows_used[i] = draws[i].row, positions[i] = draws[i].position;
    std::vector<char> masked, emptied;
    masker_.masked_flags(rows_used, &masked);
    check_rows_finite(ops, logits, rows_used, positions, &masked, &emptied);
    std::vector<int32_t> toks = draw(logits, draws, emptied);
    for (size_t i = 0; i < owner.size(); ++i) {
      if (emptied[i]) {  // nothing the draft can propose here: this decoding stops
        owner[i]->length = t;
        continue;
      }
      Speculation& spec = *owner[i]->spec;
      spec.tokens.push_back(toks[i]);
      spec.saguaro_f.push_back(draws[i].saguaro_f);
      if (!spec.greedy) spec.q.push_back(LogitsRow{logits, draws[i].row});  // a handle, not a copy
    }
  }
}

// Records output row `out_row` of constrained sequence s for masker_, following s's generated tokens
// (after its prompt) and path[0, n_path); extend_path() may add to the path.
void DraftWorker::mask_row(const DraftSequence& s, int64_t out_row, const int32_t* path, int32_t n_path) {
  masker_.add(s.id, 0, out_row, s.params.constraint, s.tokens.data() + s.prompt_len,
              static_cast<int32_t>(s.tokens.size()) - s.prompt_len);
  masker_.extend_path(path, n_path);
}

// Samples one token per draw with the request's sampling parameters and Saguaro (C, F): exactly the
// q' that verification will recompute from the same row. Draw i reads logits row i (decode_steps
// requests its logits rows in draw order), so the rows are used in place, on their device. The rows
// are usable (decode_steps checked them), except emptied ones, drawn greedily and ignored.
std::vector<int32_t> DraftWorker::draw(const Logits& logits, const std::vector<DraftDraw>& draws,
                                       const std::vector<char>& emptied) const {
  LogitsOps& ops = ops_.on(logits);
  std::vector<DraftRowParams> params(draws.size());
  for (size_t i = 0; i < draws.size(); ++i) {
    if (draws[i].row != static_cast<int64_t>(i)) throw std::logic_error("DraftWorker::draw: rows out of order");
    const SamplingParams& rp = *draws[i].params;
    params[i].sampling = transform_of(rp);
    params[i].saguaro.c = static_cast<float>(config_.saguaro_c);
    params[i].saguaro.fanout = draws[i].saguaro_f;
    params[i].seed = rp.seed;
    params[i].position = draws[i].position;
    if (emptied[i]) {  // argmax of an all -inf row, without Saguaro: drawn only to be ignored
      params[i].sampling = SamplingTransform{0.0f, 0, 1.0f};
      params[i].saguaro.fanout = 0;
    }
  }
  std::vector<int64_t> tokens(draws.size());
  DraftBatch batch;
  batch.rows = static_cast<int32_t>(draws.size());
  batch.vocab = static_cast<int32_t>(logits.vocab);
  batch.logits = logits.data;
  batch.params = params.data();
  ops.sample_draft(logits, batch, tokens.data());
  return std::vector<int32_t>(tokens.begin(), tokens.end());
}

}  // namespace ssd
