// draft_backup.cpp: how the draft worker serves sequences whose outcome was not pre-speculated
// (SSD_SPEC section 6): jit drafting, n-gram lookup, or nothing.
#include <algorithm>
#include <stdexcept>

#include "draft_worker.h"
#include "ngram_proposer.h"

namespace ssd {

int32_t DraftWorker::proposal_budget(const DraftSequence& seq, int32_t extra_decided) const {
  const int32_t pending_pos = static_cast<int32_t>(seq.tokens.size()) - 1 + extra_decided;
  return ssd::proposal_budget(config_.K, config_.max_context, pending_pos,
                              seq.max_tokens_left - extra_decided);
}

// Serves every missed sequence with one backup, timed for the backup chooser (last_round_).
void DraftWorker::serve_misses(size_t batch, const std::vector<DraftSequence*>& missed) {
  if (missed.empty()) return;
  const int64_t start = now_ns();
  const Backup backup = mode_of(config_) == Mode::kSd ? Backup::kJit : choose_backup(batch);
  stats_->record_backup(backup, missed.size());
  if (backup == Backup::kJit) {
    std::vector<Speculation> specs;
    draft_jit(missed, &specs);
    for (size_t i = 0; i < missed.size(); ++i) missed[i]->current = std::move(specs[i]);
  }
  for (DraftSequence* s : missed) {
    if (backup == Backup::kNgram) {
      s->current = draft_ngram(*s);
    } else if (backup == Backup::kNone) {
      s->current = Speculation{};
      s->current.source = SpecSource::kNone;
    }
  }
  last_round_.backup = backup;
  last_round_.backup_ns = static_cast<double>(now_ns() - start);
}

Backup DraftWorker::choose_backup(size_t batch) {
  const Backup configured = backup_of(config_);
  return configured == Backup::kAuto ? chooser_.choose(static_cast<int>(batch)) : configured;
}

// Drafts up to K tokens for each sequence autoregressively, one batched forward per step. The first
// step also forwards the decided tokens missing from the draft KV (after a prefill or a rejection).
void DraftWorker::draft_jit(const std::vector<DraftSequence*>& seqs, std::vector<Speculation>* out) {
  ScopedTimer timer(stats_, Phase::kDraftJit);
  const std::vector<int32_t> plan = planner_.plan();
  out->assign(seqs.size(), Speculation{});
  std::vector<Decoding> decodings(seqs.size());
  for (size_t b = 0; b < seqs.size(); ++b) {
    (*out)[b].source = SpecSource::kJit;
    const int32_t pending = static_cast<int32_t>(seqs[b]->tokens.size()) - 1;
    decodings[b] = Decoding{seqs[b], &(*out)[b], proposal_budget(*seqs[b], 0), pending, &plan, b};
  }
  decode_steps(decodings, 0, [](Decoding& d, int32_t t, int32_t out_row, ForwardBatchBuilder* req) {
    DraftSequence* s = d.seq;
    if (t == 0) {
      for (int32_t p = static_cast<int32_t>(s->kv.size()); p <= d.pos0; ++p) {
        req->add_row(s->tokens[p], p, s->lane, p, p == d.pos0 ? out_row : -1);
        s->kv.push_back(s->tokens[p]);
      }
      return;
    }
    const int32_t tok = d.spec->tokens[t - 1];
    req->add_row(tok, d.pos0 + t, s->lane, d.pos0 + t, out_row);
    s->kv.push_back(tok);
  });
}

Speculation DraftWorker::draft_ngram(const DraftSequence& seq) const {
  return ngram_speculation(seq.tokens, config_, proposal_budget(seq, 0));
}

}  // namespace ssd
