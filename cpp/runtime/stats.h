// stats.h: Stats, the engine's thread-safe counters, and ScopedTimer.
//
// Concept: Stats is the live counters the workers write; StatsSnapshot (ssdcore/stats.h) is the copy
// readers get. What a run measured, for metrics endpoints, benchmarks and tests: rounds, committed
// tokens, the accept-length histogram, per-position acceptance, per-position cache hits/misses, backup
// use by kind, sequence-rounds and accepted tokens by how the speculation was made (SpecSource), total
// time per phase, how much draft work was hidden behind target verification, and requests finished by
// reason. snapshot() copies everything into a StatsSnapshot with derived ratios.
//
// Positions: an accept count k is 0..K (K+1 histogram bins; the outcome position of SSD_SPEC).
// Draft position i is 0..K-1 (the i-th proposal s_{i+1}): it is "reached" when the ratio test ran on
// it (all earlier proposals accepted) and "accepted" when it passed.
//
// Invariants: all counters only grow between reset() calls; a snapshot is consistent (taken under the
// same mutex as every update, so e.g. sum(accept_hist) == sequence_rounds always holds in it).
// Out-of-range positions (k > K, i >= K, negative) throw std::out_of_range: that is a caller bug.
//
// Threads: every method may be called from any thread concurrently (the target and draft workers
// both record; any thread snapshots). One mutex guards everything: an update is a few increments,
// so the lock is held for tens of nanoseconds; batch per-round updates where convenient.
#pragma once
#include <chrono>
#include <cstdint>
#include <mutex>
#include <vector>

#include "ssdcore/stats.h"

#include "engine_config.h"
#include "sequence.h"
#include "speculation.h"

namespace ssd {

// Timed phases of a round: the public enumeration (ssdcore/stats.h). kDraftPrespeculate is the wall
// time of a whole pre-speculation (contains kDraftGlue and kDraftTree); draft_busy_ns = it + kDraftJit.
using ssdcore::Phase;
using ssdcore::kNumPhases;
using ssdcore::to_string;

// Monotonic clock in nanoseconds (steady_clock), for timers and overlap computations.
inline std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
// Length of the intersection of [a0, a1) and [b0, b1) (0 when disjoint).
inline std::int64_t overlap_ns(std::int64_t a0, std::int64_t a1, std::int64_t b0, std::int64_t b1) {
  const std::int64_t lo = a0 > b0 ? a0 : b0;
  const std::int64_t hi = a1 < b1 ? a1 : b1;
  return hi > lo ? hi - lo : 0;
}

// The copy readers get: the public ssdcore::StatsSnapshot (ssdcore/stats.h), one type for the runtime,
// the public API and the binding.
using StatsSnapshot = ssdcore::StatsSnapshot;

class Stats {
 public:
  explicit Stats(int K);  // K >= 0 (std::invalid_argument otherwise)
  Stats(const Stats&) = delete;
  Stats& operator=(const Stats&) = delete;

  int K() const { return K_; }

  void record_round(std::uint64_t n = 1);               // n target verifications
  void record_tokens(std::uint64_t n);                  // tokens committed (after stop truncation)
  // One sequence-round: `accepted` of `proposed` drafted tokens accepted (0 <= accepted <= proposed <= K),
  // the proposals made as `source` says.
  void record_accept(int accepted, int proposed, SpecSource source);
  void record_lookup(int k, bool hit);                  // cache lookup for outcome k, 0 <= k <= K
  void record_backup(Backup b, std::uint64_t sequences = 1);  // sequences served by backup b
  void add_phase_ns(Phase p, std::int64_t ns);          // one interval of ns (negative -> 0)
  void add_draft_window(std::int64_t overlap_ns);      // one window reported; its overlap_ns()
  void add_worker_bytes(std::uint64_t bytes);          // a message between the workers
  void record_draft_mask_failure();                     // a draft forward left unmasked (RowMasker)
  void record_finish(FinishReason reason);              // one request ended (kNone is ignored)

  StatsSnapshot snapshot() const;
  void reset();

 private:
  void check_k(int k, const char* what) const;

  const int K_;
  mutable std::mutex m_;
  StatsSnapshot s_;  // raw counters (derived fields are filled in by snapshot())
};

// Adds the time from construction to stop() (or destruction) to `phase` of `stats`.
// stats may be null (then it only measures). Not shared between threads.
class ScopedTimer {
 public:
  ScopedTimer(Stats* stats, Phase phase) : stats_(stats), phase_(phase), start_(now_ns()) {}
  ~ScopedTimer() { stop(); }
  ScopedTimer(const ScopedTimer&) = delete;
  ScopedTimer& operator=(const ScopedTimer&) = delete;

  // Records once (later calls return the first result) and returns the elapsed ns.
  std::int64_t stop() {
    if (!stopped_) {
      stopped_ = true;
      elapsed_ = now_ns() - start_;
      if (stats_ != nullptr) stats_->add_phase_ns(phase_, elapsed_);
    }
    return elapsed_;
  }
  std::int64_t start_ns() const { return start_; }
  std::int64_t elapsed_ns() const { return stopped_ ? elapsed_ : now_ns() - start_; }

 private:
  Stats* stats_;
  Phase phase_;
  std::int64_t start_;
  std::int64_t elapsed_ = 0;
  bool stopped_ = false;
};

}  // namespace ssd
