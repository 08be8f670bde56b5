// stats.cpp: see stats.h.
#include "stats.h"

#include <stdexcept>
#include <string>

namespace ssd {
namespace {

double ratio(double num, double den) { return den > 0 ? num / den : 0.0; }

void clear_counters(StatsSnapshot& s, int K) {
  s = StatsSnapshot{};
  s.K = K;
  s.accept_hist.assign(K + 1, 0);
  s.position_reached.assign(K, 0);
  s.position_accepted.assign(K, 0);
  s.cache_hits.assign(K + 1, 0);
  s.cache_misses.assign(K + 1, 0);
  s.backup_counts.assign(4, 0);
  s.source_rounds.assign(kNumSpecSources, 0);
  s.source_accepted.assign(kNumSpecSources, 0);
  s.phase_ns.assign(kNumPhases, 0);
  s.phase_count.assign(kNumPhases, 0);
  s.requests_finished.assign(ssdcore::kNumFinishReasons, 0);
}

void fill_derived(StatsSnapshot& s) {
  s.position_acceptance.assign(s.K, 0.0);
  for (int i = 0; i < s.K; ++i) {
    s.position_acceptance[i] = ratio(double(s.position_accepted[i]), double(s.position_reached[i]));
  }
  s.source_mean_accepted.assign(kNumSpecSources, 0.0);
  for (int i = 0; i < kNumSpecSources; ++i) {
    s.source_mean_accepted[i] = ratio(double(s.source_accepted[i]), double(s.source_rounds[i]));
  }
  double sum_k = 0;
  for (int k = 0; k <= s.K; ++k) sum_k += double(k) * double(s.accept_hist[k]);
  s.mean_accepted = ratio(sum_k, double(s.sequence_rounds));
  s.mean_accept_length = s.sequence_rounds > 0 ? s.mean_accepted + 1.0 : 0.0;
  s.tokens_per_round = ratio(double(s.tokens_committed), double(s.rounds));
  double hits = 0, lookups = 0;
  for (int k = 0; k <= s.K; ++k) {
    hits += double(s.cache_hits[k]);
    lookups += double(s.cache_hits[k] + s.cache_misses[k]);
  }
  s.hit_rate = ratio(hits, lookups);
  // The overlap is measured against whole pre-speculation windows, so busy time counts those windows
  // (glue, fork and tree, and the work between them), not just the glue and tree timers inside them.
  s.draft_busy_ns = s.phase_ns[int(Phase::kDraftPrespeculate)] + s.phase_ns[int(Phase::kDraftJit)];
  s.draft_hidden_fraction = ratio(double(s.draft_overlap_ns), double(s.draft_busy_ns));
  s.worker_bytes_per_round = ratio(double(s.worker_bytes), double(s.rounds));
}

}  // namespace


Stats::Stats(int K) : K_(K) {
  if (K < 0) throw std::invalid_argument("Stats: K = " + std::to_string(K) + " is invalid: allowed >= 0");
  clear_counters(s_, K_);
}

void Stats::check_k(int k, const char* what) const {
  if (k < 0 || k > K_) {
    throw std::out_of_range(std::string("Stats::") + what + ": position " + std::to_string(k) +
                            " outside 0.." + std::to_string(K_));
  }
}

void Stats::record_round(std::uint64_t n) {
  std::lock_guard<std::mutex> lk(m_);
  s_.rounds += n;
}

void Stats::record_tokens(std::uint64_t n) {
  std::lock_guard<std::mutex> lk(m_);
  s_.tokens_committed += n;
}

void Stats::record_accept(int accepted, int proposed, SpecSource source) {
  check_k(proposed, "record_accept(proposed)");
  const int src = static_cast<int>(source);
  if (src < 0 || src >= kNumSpecSources) throw std::out_of_range("Stats::record_accept: bad SpecSource");
  if (accepted < 0 || accepted > proposed) {
    throw std::out_of_range("Stats::record_accept: accepted " + std::to_string(accepted) +
                            " outside 0.." + std::to_string(proposed));
  }
  std::lock_guard<std::mutex> lk(m_);
  s_.sequence_rounds += 1;
  s_.accept_hist[accepted] += 1;
  for (int i = 0; i < accepted; ++i) {
    s_.position_reached[i] += 1;
    s_.position_accepted[i] += 1;
  }
  if (accepted < proposed) s_.position_reached[accepted] += 1;  // the rejected one
  s_.source_rounds[src] += 1;
  s_.source_accepted[src] += static_cast<std::uint64_t>(accepted);
}

void Stats::record_lookup(int k, bool hit) {
  check_k(k, "record_lookup");
  std::lock_guard<std::mutex> lk(m_);
  (hit ? s_.cache_hits : s_.cache_misses)[k] += 1;
}

void Stats::record_backup(Backup b, std::uint64_t sequences) {
  const int i = static_cast<int>(b);
  if (i < 0 || i >= 4) throw std::out_of_range("Stats::record_backup: bad Backup");
  std::lock_guard<std::mutex> lk(m_);
  s_.backup_counts[i] += sequences;
}

void Stats::add_phase_ns(Phase p, std::int64_t ns) {
  const int i = static_cast<int>(p);
  if (i < 0 || i >= kNumPhases) throw std::out_of_range("Stats::add_phase_ns: bad Phase");
  std::lock_guard<std::mutex> lk(m_);
  s_.phase_ns[i] += ns > 0 ? ns : 0;
  s_.phase_count[i] += 1;
}

void Stats::add_draft_window(std::int64_t ns) {
  std::lock_guard<std::mutex> lk(m_);
  s_.draft_overlap_ns += ns > 0 ? ns : 0;
  s_.draft_windows += 1;
}

void Stats::add_worker_bytes(std::uint64_t bytes) {
  std::lock_guard<std::mutex> lk(m_);
  s_.worker_bytes += bytes;
}

void Stats::record_draft_mask_failure() {
  std::lock_guard<std::mutex> lk(m_);
  ++s_.draft_mask_failures;
}

void Stats::record_finish(FinishReason reason) {
  const int i = static_cast<int>(reason);
  if (i <= 0 || i >= ssdcore::kNumFinishReasons) return;
  std::lock_guard<std::mutex> lk(m_);
  s_.requests_finished[i] += 1;
}

StatsSnapshot Stats::snapshot() const {
  StatsSnapshot out;
  {
    std::lock_guard<std::mutex> lk(m_);
    out = s_;
  }
  fill_derived(out);
  return out;
}

void Stats::reset() {
  std::lock_guard<std::mutex> lk(m_);
  clear_counters(s_, K_);
}

}  // namespace ssd

namespace ssdcore {

const char* to_string(Phase p) noexcept {
  switch (p) {
    case Phase::kTargetVerify: return "target_verify";
    case Phase::kDraftGlue: return "draft_glue";
    case Phase::kDraftTree: return "draft_tree";
    case Phase::kDraftJit: return "draft_jit";
    case Phase::kWaitForDraft: return "wait_for_draft";
    case Phase::kDraftPrespeculate: return "draft_prespeculate";
    case Phase::kTargetMask: return "target_mask";
    case Phase::kDraftMask: return "draft_mask";
  }
  return "?";
}

}  // namespace ssdcore
