// target_verify.cpp: the target worker's forwards and decisions: prefill of new requests, the batched
// verification forward, lossless acceptance (verifier.h) and commit. See target_worker.h.
#include <stdexcept>
#include <string>

#include "target_worker.h"
#include "verifier.h"

namespace ssd {

namespace {

// Verification of `n` sequences whose target rows are `logits` as [n, k+1, V].
struct VerifyInputs {
  int32_t k = 0;
  std::vector<int64_t> tokens;       // [n, k]
  std::vector<const float*> rows;    // [n, k] each proposal's draft row, in place; or empty
  std::vector<int32_t> fanout;       // [n, k]
  std::vector<SeqVerifyParams> params;
};

SeqVerifyParams verify_params(const SamplingParams& p, double saguaro_c, int64_t position) {
  SeqVerifyParams v;
  v.target = transform_of(p);
  v.draft = v.target;
  v.saguaro_c = static_cast<float>(saguaro_c);
  v.seed = p.seed;
  v.position = position;
  v.onehot = 1;
  return v;
}

void run_verify(LogitsOps& ops, const Logits& logits, VerifyInputs& in, std::vector<int64_t>* accept,
                std::vector<int64_t>* next) {
  const int32_t n = static_cast<int32_t>(in.params.size());
  accept->assign(n, 0);
  next->assign(n, 0);
  VerifyBatch batch;
  batch.batch = n;
  batch.k = in.k;
  batch.vocab = static_cast<int32_t>(logits.vocab);
  batch.target_logits = logits.data;
  batch.draft_tokens = in.k > 0 ? in.tokens.data() : nullptr;
  batch.draft_rows = in.rows.empty() ? nullptr : in.rows.data();
  batch.saguaro_fanout = in.k > 0 ? in.fanout.data() : nullptr;
  batch.params = in.params.data();
  VerifyResult result{accept->data(), next->data()};
  ops.verify(logits, batch, result);
}

// Points row b * K + i of in->rows at proposal i's draft row, where the draft left it. The rows must
// be on the target logits' device (verification reads both in one place).
void point_at_rows(const Logits& target, const Speculation& spec, size_t b, VerifyInputs* in) {
  for (size_t i = 0; i < spec.q.size(); ++i) {
    const Logits& q = spec.q[i].logits;
    if (!q.same_device(target)) {
      throw std::runtime_error("draft logits on " + std::string(to_string(q.device)) + ":" +
                               std::to_string(q.device_index) + " but target logits on " +
                               to_string(target.device) + ":" + std::to_string(target.device_index) +
                               "; verification reads both on one device");
    }
    in->rows[b * in->k + i] = spec.q[i].data();
  }
}

}  // namespace

// Prefills every new request in one forward and samples its first token from the last row.
void TargetWorker::prefill(std::vector<Request>& requests, ToDraft* msg) {
  ForwardBatchBuilder req;
  VerifyInputs in;
  masker_.clear();
  for (size_t i = 0; i < requests.size(); ++i) {
    const Request& r = requests[i];
    int32_t lane = free_lanes_.back();
    free_lanes_.pop_back();
    int32_t n = static_cast<int32_t>(r.prompt.size());
    for (int32_t p = 0; p < n; ++p) req.add_row(r.prompt[p], p, lane, p, p == n - 1 ? int32_t(i) : -1);
    in.params.push_back(verify_params(r.params, config_.saguaro_c, n));
    ActiveSequence& a = active_[r.id];
    a.seq.id = r.id;
    a.seq.lane = lane;
    a.seq.prompt_len = n;
    a.seq.tokens = r.prompt;
    a.seq.params = r.params;
    a.submit_ns = r.submit_ns;
    a.stream = r.stream;
    a.metrics.prompt_tokens = n;
    if (r.params.constraint > 0) masker_.add(r.id, 0, static_cast<int64_t>(i), r.params.constraint, nullptr, 0);
  }
  req.out_rows = static_cast<int32_t>(requests.size());
  warm_draft(requests);
  Logits logits;
  try {
    logits = req.run(*runner_, "target");
  } catch (...) {
    for (const Request& r : requests) pending_.leaves.push_back(r.id);  // not yet told to the draft
    throw;
  }
  mask(logits);  // constrained rows, before anything reads them
  LogitsOps& ops = ops_.on(logits);
  std::vector<int64_t> accept, next;
  run_verify(ops, logits, in, &accept, &next);
  std::vector<int64_t> rows(requests.size()), positions(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) rows[i] = i, positions[i] = active_[requests[i].id].seq.prompt_len;
  std::vector<BadLogit> bad;
  ops.find_bad(logits, rows, &bad);
  for (size_t i = 0; i < requests.size(); ++i) {
    ActiveSequence& a = active_[requests[i].id];
    const bool warmed = to_draft_ != nullptr;  // the draft knows it from the warm-up
    if (fail_non_finite(logits, &bad[i], 1, a.seq.id, a.seq.prompt_len) ||
        fail_mask(a.seq.id, 0, a.seq.prompt_len)) {
      if (warmed) msg->leaves.push_back(requests[i].id);
      continue;
    }
    a.first_token_ns = now_ns();
    a.metrics.time_to_first_token = (a.first_token_ns - a.submit_ns) * 1e-9;
    commit(a, {static_cast<int32_t>(next[i])});
    if (a.seq.finished()) {
      finish(a.seq.id, a.seq.finish);
      if (warmed) msg->leaves.push_back(a.seq.id);
      continue;
    }
    msg->joins.push_back(DraftJoin{a.seq.id, a.seq.lane, a.seq.prompt_len, a.seq.tokens, a.seq.params});
  }
}

// Lets the draft prefill the new prompts while the target prefills them (ToDraft::warm_only).
void TargetWorker::warm_draft(const std::vector<Request>& requests) {
  if (to_draft_ == nullptr) return;
  ToDraft warm;
  warm.warm_only = true;
  for (const Request& r : requests) {
    const ActiveSequence& a = active_.at(r.id);
    warm.joins.push_back(DraftJoin{a.seq.id, a.seq.lane, a.seq.prompt_len, a.seq.tokens, a.seq.params});
  }
  stats_->add_worker_bytes(wire_bytes(warm));
  to_draft_->push(std::move(warm));  // a closed channel fails the next exchange instead
}

Logits TargetWorker::verify_forward(const ToTarget& specs) {
  ForwardBatchBuilder req;
  const int32_t rows = config_.K + 1;
  masker_.clear();
  for (size_t b = 0; b < specs.specs.size(); ++b) {
    const Sequence& s = active_.at(specs.specs[b].first).seq;
    const Speculation& spec = specs.specs[b].second;
    int32_t L = s.pending_position();
    int32_t out0 = static_cast<int32_t>(b) * rows;
    req.add_row(s.tokens.back(), L, s.lane, L, out0);
    for (size_t i = 0; i < spec.tokens.size(); ++i) {
      int32_t pos = L + 1 + static_cast<int32_t>(i);
      req.add_row(spec.tokens[i], pos, s.lane, pos, out0 + 1 + static_cast<int32_t>(i));
    }
    if (s.params.constraint <= 0) continue;
    for (int32_t i = 0; i <= static_cast<int32_t>(spec.tokens.size()); ++i) {  // row i follows s_1..s_i
      masker_.add(s.id, i, out0 + i, s.params.constraint, s.tokens.data() + s.prompt_len, s.generated());
      masker_.extend_path(spec.tokens.data(), i);
    }
  }
  req.out_rows = static_cast<int32_t>(specs.specs.size()) * rows;
  last_verify_[0] = now_ns();
  Logits logits = req.run(*runner_, "target");
  mask(logits);  // constrained rows, before verification reads them
  return logits;
}

void TargetWorker::decide(const Logits& logits, const ToTarget& specs, ToDraft* next_msg) {
  const int32_t K = config_.K;
  const size_t B = specs.specs.size();
  VerifyInputs in;
  in.k = K;
  in.tokens.assign(B * K, 0);
  in.fanout.assign(B * K, 0);
  bool any_sampled = false;
  for (const auto& entry : specs.specs) any_sampled |= !entry.second.onehot && entry.second.has_rows();
  if (any_sampled) in.rows.assign(B * K, nullptr);
  for (size_t b = 0; b < B; ++b) {
    const Sequence& s = active_.at(specs.specs[b].first).seq;
    const Speculation& spec = specs.specs[b].second;
    SeqVerifyParams p = verify_params(s.params, config_.saguaro_c, s.pending_position() + 1);
    p.draft_len = static_cast<int32_t>(spec.tokens.size());
    p.onehot = spec.onehot || !spec.has_rows() ? 1 : 0;
    in.params.push_back(p);
    for (int32_t i = 0; i < p.draft_len; ++i) {
      in.tokens[b * K + i] = spec.tokens[i];
      if (i < static_cast<int32_t>(spec.saguaro_f.size())) in.fanout[b * K + i] = spec.saguaro_f[i];
    }
    if (!p.onehot) point_at_rows(logits, spec, b, &in);
  }
  LogitsOps& ops = ops_.on(logits);
  std::vector<int64_t> accept, next;
  run_verify(ops, logits, in, &accept, &next);
  std::vector<int64_t> rows, row0(B);  // every row verification may have used: [r, s_1..s_n]
  for (size_t b = 0; b < B; ++b) {
    row0[b] = static_cast<int64_t>(rows.size());
    for (size_t i = 0; i <= specs.specs[b].second.tokens.size(); ++i) rows.push_back(static_cast<int64_t>(b) * (K + 1) + i);
  }
  std::vector<BadLogit> bad;
  ops.find_bad(logits, rows, &bad);
  last_verify_[1] = now_ns();
  stats_->add_phase_ns(Phase::kTargetVerify, last_verify_[1] - last_verify_[0]);
  next_msg->verify_seconds = (last_verify_[1] - last_verify_[0]) * 1e-9;
  stats_->record_round();
  for (size_t b = 0; b < B; ++b) {
    ActiveSequence& a = active_.at(specs.specs[b].first);
    const Speculation& spec = specs.specs[b].second;
    const int32_t used_rows = static_cast<int32_t>(spec.tokens.size()) + 1;
    int32_t k = static_cast<int32_t>(accept[b]);
    if (fail_non_finite(logits, &bad[row0[b]], used_rows, a.seq.id, a.seq.pending_position() + 1) ||
        fail_mask(a.seq.id, k, a.seq.pending_position() + 1)) {
      next_msg->leaves.push_back(specs.specs[b].first);
      continue;
    }
    std::vector<int32_t> decided(spec.tokens.begin(), spec.tokens.begin() + k);
    decided.push_back(static_cast<int32_t>(next[b]));
    stats_->record_accept(k, static_cast<int32_t>(spec.tokens.size()), spec.source);
    a.seq.rounds += 1;
    a.seq.accepted_drafts += k;
    a.metrics.cache_lookups += 1;
    a.metrics.cache_hits += spec.source == SpecSource::kCacheHit ? 1 : 0;
    commit(a, decided);
    next_msg->outcomes.push_back(SeqOutcome{a.seq.id, k, decided, a.seq.finished()});
    if (a.seq.finished()) finish(a.seq.id, a.seq.finish);
  }
}

void TargetWorker::commit(ActiveSequence& a, const std::vector<int32_t>& decided) {
  size_t before = a.seq.tokens.size();
  int32_t n = a.seq.commit(decided.data(), static_cast<int32_t>(decided.size()), eos_ids_);
  stats_->record_tokens(n);
  if ((n == 0 && !a.seq.finished()) || !a.stream) return;  // !stream: the finish event carries them
  OutputEvent ev;
  ev.seq_id = a.seq.id;
  ev.tokens.assign(a.seq.tokens.begin() + before, a.seq.tokens.end());
  if (!ev.tokens.empty()) events_->push(std::move(ev));
}

}  // namespace ssd
