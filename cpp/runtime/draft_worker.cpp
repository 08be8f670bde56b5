// draft_worker.cpp: the draft worker's thread and round loop; see draft_worker.h.
#include "draft_worker.h"

#include "worker_thread.h"

#include <algorithm>
#include <exception>
#include <string>

namespace ssd {

DraftWorker::DraftWorker(const EngineConfig& config, ModelRunner* runner, Stats* stats,
                         Channel<ToDraft>* inbox, Channel<ToTarget>* outbox, LogitsBackends ops,
                         std::shared_ptr<TokenMasker> masker)
    : config_(config),
      runner_(runner),
      ops_(std::move(ops)),
      stats_(stats),
      masker_(std::move(masker), 1, stats, Phase::kDraftMask),
      inbox_(inbox),
      outbox_(outbox),
      cache_(config.K),
      planner_(make_fan_out_planner(config)),
      chooser_(config.auto_jit_max_batch) {}

DraftWorker::~DraftWorker() { join(); }

std::string DraftWorker::start() { return start_worker(&thread_, runner_, "draft", [this] { run(); }); }

void DraftWorker::join() {
  if (thread_.joinable()) thread_.join();
}

void DraftWorker::run() {
  ToDraft msg;
  while (inbox_->pop(msg)) handle(msg);
}

void DraftWorker::handle(ToDraft& msg) {
  replied_ = false;
  try {
    if (msg.warm_only) {
      warm(msg);
    } else {
      round(msg);
    }
  } catch (const NonFiniteLogits& e) {
    fail(msg, std::string("draft ") + e.what(), ErrorKind::kNonFinite);
  } catch (const std::exception& e) {
    fail(msg, std::string("draft model runner failed: ") + e.what(), ErrorKind::kModelRunner);
  }
}

// The draft side forgets every sequence it knows (and those of `msg`) and reports them failed: in
// this message's reply if it is still owed, else in the next reply (never an unrequested reply).
void DraftWorker::fail(const ToDraft& msg, const std::string& error, ErrorKind kind) {
  for (const auto& kv : seqs_) failed_.failed.push_back(kv.first);
  for (const DraftJoin& j : msg.joins) failed_.failed.push_back(j.seq_id);
  for (const SeqOutcome& o : msg.outcomes) failed_.failed.push_back(o.seq_id);
  if (failed_.error.empty()) failed_.error = error, failed_.error_kind = kind;
  seqs_.clear();
  cache_.clear();
  if (msg.warm_only || replied_) return;
  ToTarget reply = take_failures();
  reply.round = msg.round;
  outbox_->push(std::move(reply));
}

// The failures kept since the last reply, for the reply about to go out.
ToTarget DraftWorker::take_failures() {
  ToTarget out;
  std::sort(failed_.failed.begin(), failed_.failed.end());
  failed_.failed.erase(std::unique(failed_.failed.begin(), failed_.failed.end()), failed_.failed.end());
  std::swap(out, failed_);
  return out;
}

// One SSD round on the draft side (SSD_SPEC 2.1 and 6).
void DraftWorker::round(ToDraft& msg) {
  observe_round(msg);             // what the last round measured, for the backup chooser
  apply(msg);                     // joins, outcomes and leaves decided by the target
  for (int64_t id : failed_.failed) seqs_.erase(id), cache_.erase_sequence(id);  // joined, then failed
  ToTarget served = serve(msg);   // cache hit, else the backup, for every active sequence
  ToTarget failures = take_failures();  // sequences failed since the last reply, if any
  served.failed = std::move(failures.failed), served.error = std::move(failures.error);
  served.error_kind = failures.error_kind;
  served.prespec_start_ns = last_prespec_[0];
  served.prespec_end_ns = last_prespec_[1];
  last_prespec_[0] = last_prespec_[1] = 0;  // reported once: a round without a new window reports none
  replied_ = true;
  outbox_->push(std::move(served));  // the target starts verifying these now...
  if (mode_of(config_) == Mode::kSsd && !seqs_.empty()) {
    prespeculate();         // ...while the draft prepares every likely next round
  }
}

static size_t common_prefix(const std::vector<int32_t>& a, const std::vector<int32_t>& b, size_t limit) {
  size_t n = std::min({a.size(), b.size(), limit});
  size_t i = 0;
  while (i < n && a[i] == b[i]) ++i;
  return i;
}

// Prefills the draft KV with the prompts the target is prefilling now (ToDraft::warm_only).
void DraftWorker::warm(const ToDraft& msg) {
  apply(msg);
  ForwardBatchBuilder req;
  for (const DraftJoin& join : msg.joins) {
    DraftSequence& s = seqs_.at(join.seq_id);
    const int32_t n = static_cast<int32_t>(s.tokens.size());
    for (int32_t p = 0; p < n; ++p) req.add_row(s.tokens[p], p, s.lane, p, p == n - 1 ? req.out_rows++ : -1);
    s.kv = s.tokens;
  }
  if (req.out_rows > 0) req.run(*runner_, "draft");
}

// Feeds the backup chooser the round whose outcomes `msg` reports: hits and tokens by how each
// sequence was served, the target's verification time, this worker's pre-speculation and backup times.
void DraftWorker::observe_round(const ToDraft& msg) {
  RoundObservation obs = last_round_;
  last_round_ = RoundObservation{};
  obs.verify_ns = msg.verify_seconds * 1e9;
  for (const SeqOutcome& out : msg.outcomes) {
    auto it = seqs_.find(out.seq_id);
    if (it == seqs_.end()) continue;
    const bool hit = it->second.current.source == SpecSource::kCacheHit;
    obs.batch += 1;
    obs.hits += hit ? 1 : 0;
    (hit ? obs.hit_tokens : obs.backup_tokens) += out.accepted + 1;
  }
  chooser_.observe(obs);
}

void DraftWorker::apply(const ToDraft& msg) {
  for (const DraftJoin& join : msg.joins) {
    auto warmed = seqs_.find(join.seq_id);  // a warm-up's prefill stays valid for the same prompt
    std::vector<int32_t> kv = warmed == seqs_.end() ? std::vector<int32_t>{} : std::move(warmed->second.kv);
    kv.resize(common_prefix(kv, join.tokens, join.tokens.size()));
    DraftSequence s;
    s.kv = std::move(kv);
    s.id = join.seq_id;
    s.lane = join.lane;
    s.prompt_len = join.prompt_len;
    s.tokens = join.tokens;
    s.params = join.params;
    s.max_tokens_left = join.params.max_tokens - 1;
    seqs_[s.id] = std::move(s);
  }
  for (const SeqOutcome& out : msg.outcomes) {
    auto it = seqs_.find(out.seq_id);
    if (it == seqs_.end()) continue;
    DraftSequence& s = it->second;
    planner_.observe_accept(out.accepted, static_cast<int>(s.current.tokens.size()));
    if (out.finished) {
      cache_.erase_sequence(out.seq_id);
      seqs_.erase(it);
      continue;
    }
    s.tokens.insert(s.tokens.end(), out.decided.begin(), out.decided.end());
    s.max_tokens_left -= static_cast<int32_t>(out.decided.size());
    s.kv.resize(common_prefix(s.kv, s.tokens, s.tokens.size() - 1));
  }
  for (int64_t id : msg.leaves) {
    cache_.erase_sequence(id);
    seqs_.erase(id);
  }
}

ToTarget DraftWorker::serve(const ToDraft& msg) {
  ToTarget out;
  out.round = msg.round;
  std::vector<DraftSequence*> order, missed;
  for (const DraftJoin& join : msg.joins) {
    auto it = seqs_.find(join.seq_id);
    if (it != seqs_.end()) order.push_back(&it->second), missed.push_back(&it->second);
  }
  for (const SeqOutcome& o : msg.outcomes) {
    auto it = seqs_.find(o.seq_id);
    if (it == seqs_.end()) continue;
    DraftSequence& s = it->second;
    order.push_back(&s);
    std::optional<Speculation> hit;
    if (mode_of(config_) == Mode::kSsd) {
      hit = cache_.lookup(s.id, o.accepted, s.tokens.back());
      int32_t f = o.accepted < static_cast<int32_t>(s.plan.size()) ? s.plan[o.accepted] : 0;
      planner_.observe_hit(o.accepted, f, hit.has_value());
      stats_->record_lookup(o.accepted, hit.has_value());
    }
    if (hit) {
      s.current = std::move(*hit);
    } else {
      missed.push_back(&s);
    }
  }
  serve_misses(order.size(), missed);
  for (DraftSequence* s : order) out.specs.emplace_back(s->id, s->current);
  return out;
}

// Pre-speculates from every sequence's current speculation (DraftSequence::current).
void DraftWorker::prespeculate() {
  std::vector<DraftSequence*> seqs;
  std::vector<int32_t> plan = planner_.plan();
  for (auto& kv : seqs_) {
    kv.second.plan = plan;
    seqs.push_back(&kv.second);
  }
  ScopedTimer busy(stats_, Phase::kDraftPrespeculate);
  std::vector<int32_t> row0;
  std::vector<char> emptied;
  Logits glue = glue_forward(seqs, &row0, &emptied);
  tree_decode(seqs, glue, emptied, row0);
  const int64_t ns = busy.stop();
  last_prespec_[0] = busy.start_ns();
  last_prespec_[1] = busy.start_ns() + ns;
  last_round_.prespec_ns = static_cast<double>(ns);
}

}  // namespace ssd
