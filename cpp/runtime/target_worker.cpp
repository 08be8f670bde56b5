// target_worker.cpp: the target worker's thread and round loop; see target_worker.h.
#include "target_worker.h"

#include "ngram_proposer.h"
#include "worker_thread.h"

#include <algorithm>
#include <exception>
#include <string>
#include <unordered_set>

namespace ssd {

TargetWorker::TargetWorker(const EngineConfig& config, ModelRunner* runner, Stats* stats,
                           Scheduler* scheduler, Channel<ToDraft>* to_draft,
                           Channel<ToTarget>* from_draft, Channel<OutputEvent>* events,
                           std::vector<int32_t> eos_ids, LogitsBackends ops,
                           std::shared_ptr<TokenMasker> masker)
    : config_(config),
      runner_(runner),
      ops_(std::move(ops)),
      stats_(stats),
      scheduler_(scheduler),
      to_draft_(to_draft),
      from_draft_(from_draft),
      events_(events),
      eos_ids_(std::move(eos_ids)),
      masker_(std::move(masker), 0, stats, Phase::kTargetMask) {
  for (int32_t lane = config.max_batch - 1; lane >= 0; --lane) free_lanes_.push_back(lane);
}

TargetWorker::~TargetWorker() { join(); }

std::string TargetWorker::start() { return start_worker(&thread_, runner_, "target", [this] { run(); }); }

void TargetWorker::join() {
  if (thread_.joinable()) thread_.join();
}

void TargetWorker::run() {
  while (scheduler_->wait_for_work(active_.empty() && pending_.outcomes.empty())) {
    try {
      round();
    } catch (const std::exception& e) {
      fail_all(std::string("target model runner failed: ") + e.what(), ErrorKind::kModelRunner);
    }
  }
  fail_all("the engine was closed before the request finished", ErrorKind::kClosed);
}

// One round on the target side (SSD_SPEC 2.2).
void TargetWorker::round() {
  ToDraft msg = std::move(pending_);
  pending_ = ToDraft{};
  cancel(&msg);                          // drop cancelled requests
  admit(&msg);                           // prefill new requests, sample their first token
  if (active_.empty() && msg.outcomes.empty() && msg.leaves.empty()) return;
  ToTarget specs = exchange(std::move(msg));  // one speculation per sequence (hit or backup)
  if (!specs.error.empty() && specs.failed.empty()) return fail_all(specs.error, specs.error_kind);
  for (int64_t id : specs.failed) {
    if (active_.count(id) != 0) pending_.leaves.push_back(id);
    finish(id, FinishReason::kError, specs.error, specs.error_kind);
  }
  if (specs.specs.empty()) return;
  Logits logits = verify_forward(specs);  // one target forward over [r, s_1..s_n] per sequence
  decide(logits, specs, &pending_);      // lossless acceptance, commit, stream, stop
}

void TargetWorker::cancel(ToDraft* msg) {
  for (int64_t id : scheduler_->take_cancelled()) {
    if (active_.count(id) == 0) continue;
    finish(id, FinishReason::kCancelled, "");
    msg->leaves.push_back(id);
  }
}

void TargetWorker::admit(ToDraft* msg) {
  if (free_lanes_.empty()) return;
  std::vector<Request> requests = scheduler_->take_new(free_lanes_.size());
  if (requests.empty()) return;
  std::vector<int64_t> late = scheduler_->take_cancelled();
  std::unordered_set<int64_t> late_set(late.begin(), late.end());
  std::vector<Request> keep;
  for (Request& r : requests) {
    if (late_set.count(r.id) != 0) {
      OutputEvent ev;
      ev.seq_id = r.id;
      ev.finish = FinishReason::kCancelled;
      events_->push(std::move(ev));
    } else {
      keep.push_back(std::move(r));
    }
  }
  for (int64_t id : late) {
    if (active_.count(id) != 0) finish(id, FinishReason::kCancelled, ""), msg->leaves.push_back(id);
  }
  if (!keep.empty()) prefill(keep, msg);
}

// Draft-free sd: up to K one-hot proposals by n-gram lookup in the sequence's own tokens, within the
// proposal budget (speculation.h).
static Speculation lookup_speculation(const Sequence& s, const EngineConfig& config) {
  const int32_t budget = proposal_budget(config.K, config.max_context, s.pending_position(),
                                         s.params.max_tokens - s.generated());
  return ngram_speculation(s.tokens, config, budget);
}

ToTarget TargetWorker::exchange(ToDraft msg) {
  ToTarget specs;
  specs.round = ++round_;
  if (to_draft_ == nullptr) {  // no draft worker: ar proposes nothing, draft-free sd looks up n-grams
    const bool lookup = mode_of(config_) == Mode::kSd;
    for (auto& kv : active_) {
      specs.specs.emplace_back(kv.first, lookup ? lookup_speculation(kv.second.seq, config_) : Speculation{});
    }
    if (lookup) stats_->record_backup(Backup::kNgram, active_.size());
    return specs;
  }
  msg.round = specs.round;
  ScopedTimer wait(stats_, Phase::kWaitForDraft);
  const std::uint64_t sent = wire_bytes(msg);
  if (!to_draft_->push(std::move(msg)) || !from_draft_->pop(specs)) {
    specs.error = "the draft worker stopped";
    specs.error_kind = ErrorKind::kClosed;
    return specs;
  }
  wait.stop();
  stats_->add_worker_bytes(sent + wire_bytes(specs));
  if (specs.round != round_) {  // one reply per message (messages.h): anything else is a bug
    specs.error = "draft protocol error: got the reply to round " + std::to_string(specs.round) +
                  " while waiting for round " + std::to_string(round_);
    specs.error_kind = ErrorKind::kModelRunner;
    return specs;
  }
  if (specs.prespec_start_ns != 0) {  // each pre-speculation window is reported once (draft_worker.cpp)
    stats_->add_draft_window(overlap_ns(specs.prespec_start_ns, specs.prespec_end_ns, last_verify_[0],
                                        last_verify_[1]));
  }
  specs.specs.erase(std::remove_if(specs.specs.begin(), specs.specs.end(),
                                   [&](const auto& s) { return active_.count(s.first) == 0; }),
                    specs.specs.end());
  return specs;
}

void TargetWorker::finish(int64_t id, FinishReason reason, const std::string& error, ErrorKind kind) {
  auto it = active_.find(id);
  if (it == active_.end()) return;
  ActiveSequence& a = it->second;
  OutputEvent ev;
  ev.seq_id = id;
  ev.finish = reason;
  ev.error = error;
  ev.error_kind = reason == FinishReason::kError ? kind : ErrorKind::kNone;
  a.metrics.generated_tokens = a.seq.generated();
  a.metrics.rounds = a.seq.rounds;
  a.metrics.accepted_drafts = a.seq.accepted_drafts;
  if (a.first_token_ns > 0) a.metrics.decode_seconds = (now_ns() - a.first_token_ns) * 1e-9;
  ev.metrics = a.metrics;
  if (!a.stream) ev.tokens.assign(a.seq.tokens.begin() + a.seq.prompt_len, a.seq.tokens.end());
  free_lanes_.push_back(a.seq.lane);
  active_.erase(it);
  events_->push(std::move(ev));
}

void TargetWorker::fail_all(const std::string& error, ErrorKind kind) {
  std::vector<int64_t> ids;
  for (auto& kv : active_) ids.push_back(kv.first);
  for (int64_t id : ids) {
    finish(id, FinishReason::kError, error, kind);
    pending_.leaves.push_back(id);
  }
  pending_.outcomes.clear();
}

// Fails sequence `id` when any of its `rows` logits rows is unusable (bad[0..rows), from
// LogitsOps::find_bad: NaN, +inf, or no finite entry): an error naming the side and the position the
// row predicts (`position` is that of the first row).
bool TargetWorker::fail_non_finite(const Logits& logits, const BadLogit* bad, int32_t rows, int64_t id,
                                   int32_t position) {
  for (int32_t i = 0; i < rows; ++i) {
    std::string message = non_finite_message(bad[i], logits.vocab, position + i);
    if (message.empty()) continue;
    finish(id, FinishReason::kError, "target " + message, ErrorKind::kNonFinite);
    return true;
  }
  return false;
}

// Masks the constrained rows recorded in masker_ (see target_worker.h); records what failed, per
// sequence, in mask_failures_ for fail_mask().
void TargetWorker::mask(const Logits& logits) {
  mask_failures_.clear();
  if (masker_.empty()) return;
  try {
    masker_.apply(ops_.on(logits), logits);
  } catch (const TokenMaskerError& e) {
    for (const RowMasker::Row& r : masker_.rows()) mask_failures_[r.tag] = MaskFailure{-1, std::string("target ") + e.what()};
    return;
  }
  for (const RowMasker::Row& r : masker_.rows()) {
    if (!r.none_allowed) continue;
    auto it = mask_failures_.find(r.tag);
    if (it == mask_failures_.end() || r.local < it->second.local) mask_failures_[r.tag] = MaskFailure{r.local, ""};
  }
}

// Fails sequence `id` when the last forward's masking failed for it in a row it used: the masker threw,
// or a row at index <= `accepted` (row 0 predicts `position`) allowed no token.
bool TargetWorker::fail_mask(int64_t id, int32_t accepted, int32_t position) {
  if (mask_failures_.empty()) return false;
  auto it = mask_failures_.find(id);
  if (it == mask_failures_.end() || it->second.local > accepted) return false;
  std::string error = it->second.error;
  if (error.empty()) {
    error = "the constraint allows no token at position " + std::to_string(position + it->second.local) +
            " (the TokenMasker returned an empty mask for a decided prefix)";
  }
  finish(id, FinishReason::kError, error, ErrorKind::kModelRunner);
  return true;
}

}  // namespace ssd
