// draft_backup.cpp: how the draft worker serves sequences whose outcome was not pre-speculated
// (SSD_SPEC section 6): jit drafting, n-gram lookup, or nothing; and the draft sampler glue.
#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "draft_sampler.h"
#include "draft_worker.h"
#include "ngram_proposer.h"

namespace ssd {

int32_t DraftWorker::proposal_budget(const DraftSequence& seq, int32_t extra_decided) const {
  int32_t pending_pos = static_cast<int32_t>(seq.tokens.size()) - 1 + extra_decided;
  int32_t by_context = config_.max_context - 1 - pending_pos;
  int32_t by_length = seq.max_tokens_left - extra_decided - 1;
  return std::max(0, std::min({config_.K, by_context, by_length}));
}

void DraftWorker::serve_misses(size_t batch, const std::vector<DraftSequence*>& missed,
                               double verify_seconds) {
  if (missed.empty()) return;
  Backup backup = mode_of(config_) == Mode::kSd ? Backup::kJit
                                                   : choose_backup(batch, verify_seconds);
  stats_->record_backup(backup, missed.size());
  if (backup == Backup::kJit) {
    std::vector<Speculation> specs;
    draft_jit(missed, &specs);
    for (size_t i = 0; i < missed.size(); ++i) missed[i]->current = std::move(specs[i]);
    return;
  }
  for (DraftSequence* s : missed) {
    if (backup == Backup::kNgram) {
      s->current = draft_ngram(*s);
    } else {
      s->current = Speculation{};
      s->current.source = SpecSource::kNone;
    }
  }
}

Backup DraftWorker::choose_backup(size_t batch, double verify_seconds) {
  Backup configured = backup_of(config_);
  if (configured != Backup::kAuto) return configured;
  StatsSnapshot snap = stats_->snapshot();
  return chooser_.choose(static_cast<int>(batch), verify_seconds, snap);
}

// Drafts up to K tokens for each sequence autoregressively, one batched forward per step. The first
// step also forwards the decided tokens missing from the draft KV (after a prefill or a rejection).
void DraftWorker::draft_jit(const std::vector<DraftSequence*>& seqs, std::vector<Speculation>* out) {
  ScopedTimer timer(stats_, Phase::kDraftJit);
  const int64_t V = runner_->vocab_size();
  const size_t B = seqs.size();
  std::vector<int32_t> plan = planner_.plan();
  std::vector<int32_t> n(B);
  int32_t steps = 0;
  out->assign(B, Speculation{});
  for (size_t b = 0; b < B; ++b) {
    n[b] = proposal_budget(*seqs[b], 0);
    steps = std::max(steps, n[b]);
    (*out)[b].source = SpecSource::kJit;
    (*out)[b].greedy = !needs_q(seqs[b]->params);
    if (!(*out)[b].greedy) (*out)[b].q = std::make_shared<std::vector<float>>(static_cast<size_t>(n[b]) * V);
  }
  for (int32_t step = 0; step < steps; ++step) {
    ForwardRequest req;
    std::vector<DraftDraw> draws;
    std::vector<size_t> owner;
    for (size_t b = 0; b < B; ++b) {
      if (step >= n[b]) continue;
      DraftSequence* s = seqs[b];
      int32_t pending = static_cast<int32_t>(s->tokens.size()) - 1;
      int32_t out_row = static_cast<int32_t>(draws.size());
      if (step == 0) {
        for (int32_t p = static_cast<int32_t>(s->kv.size()); p <= pending; ++p) {
          req.add_row(s->tokens[p], p, s->lane, p, p == pending ? out_row : -1);
          s->kv.push_back(s->tokens[p]);
        }
      } else {
        int32_t tok = (*out)[b].tokens[step - 1];
        req.add_row(tok, pending + step, s->lane, pending + step, out_row);
        s->kv.push_back(tok);
      }
      int32_t f = step < static_cast<int32_t>(plan.size()) ? plan[step] : 0;
      draws.push_back({out_row, &s->params, pending + step + 1, f});
      owner.push_back(b);
    }
    req.out_rows = static_cast<int32_t>(draws.size());
    Logits logits = runner_->forward(req);
    std::vector<int32_t> toks = draw(logits, draws);
    for (size_t i = 0; i < draws.size(); ++i) {
      Speculation& spec = (*out)[owner[i]];
      spec.tokens.push_back(toks[i]);
      spec.saguaro_f.push_back(draws[i].saguaro_f);
      if (spec.q)
        std::memcpy(spec.q->data() + static_cast<size_t>(step) * V, logits.row(draws[i].row), sizeof(float) * V);
    }
  }
}

Speculation DraftWorker::draft_ngram(const DraftSequence& seq) const {
  Speculation spec;
  spec.source = SpecSource::kNgram;
  spec.onehot = true;
  spec.tokens = ngram_propose(seq.tokens, config_.ngram_n, proposal_budget(seq, 0));
  spec.saguaro_f.assign(spec.tokens.size(), 0);
  return spec;
}

// Samples one token per draw with the request's sampling parameters and Saguaro (C, F): exactly the
// q' that verification will recompute from the same row. Draw i reads logits row i (both callers
// request their logits rows in draw order), so the rows are used in place.
std::vector<int32_t> DraftWorker::draw(const Logits& logits, const std::vector<DraftDraw>& draws) const {
  std::vector<DraftRowParams> params(draws.size());
  for (size_t i = 0; i < draws.size(); ++i) {
    if (draws[i].row != static_cast<int64_t>(i)) throw std::logic_error("DraftWorker::draw: rows out of order");
    check_finite(logits, draws[i].row, draws[i].position);
    const SamplingParams& rp = *draws[i].params;
    params[i].sampling = transform_of(rp);
    params[i].saguaro.c = static_cast<float>(config_.saguaro_c);
    params[i].saguaro.fanout = draws[i].saguaro_f;
    params[i].seed = rp.seed;
    params[i].position = draws[i].position;
  }
  std::vector<int64_t> tokens(draws.size());
  DraftBatch batch;
  batch.rows = static_cast<int32_t>(draws.size());
  batch.vocab = static_cast<int32_t>(logits.vocab);
  batch.logits = logits.data;
  batch.params = params.data();
  DraftResult result;
  result.tokens = tokens.data();
  sample_draft_cpu(batch, result, 1);
  return std::vector<int32_t>(tokens.begin(), tokens.end());
}

// Throws NonFiniteLogits when logits row `row` (for the token at `position`) is unusable.
void DraftWorker::check_finite(const Logits& logits, int64_t row, int32_t position) {
  std::string message = non_finite_message(logits.row(row), logits.vocab, position);
  if (!message.empty()) throw NonFiniteLogits(message);
}

}  // namespace ssd
