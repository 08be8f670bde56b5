// ssdcore/stats.h: ssdcore::StatsSnapshot, a copy of what an engine measured since it started (or since
// Engine::reset_stats()), for readers.
//
// The one snapshot type: the runtime fills it (its live counters, written by the workers, are the
// internal Stats of cpp/stats.h), the public API returns it and the Python binding turns it into a
// dict through for_each_field(), the one list of its fields. A new metric is a field here plus its
// line in for_each_field() (and the Stats method that records it); the Python side reads it by name.
//
// Positions: an accept count k is 0..K (K+1 bins: the outcome positions of SSD); a draft position i
// is 0..K-1 (the proposal s_{i+1}), "reached" when the acceptance test ran on it and "accepted" when
// it passed. Vectors indexed by an enumeration below have exactly that enumeration's size.
// A snapshot is consistent: it is taken under the same lock as every update, so for instance the sum
// of accept_hist equals sequence_rounds. Threads: a plain value type.
#pragma once
#include <cstdint>
#include <vector>

namespace ssdcore {

// What made a speculation on a cache miss (index of StatsSnapshot::backup_counts).
enum class Backup : int { kAuto = 0, kJit, kNgram, kNone };
inline constexpr int kNumBackups = 4;

// How the tokens a round verified were proposed (index of StatsSnapshot::source_*).
enum class SpecSource : int {
  kCacheHit = 0,  // pre-speculated by the draft during the previous verification (SSD hit)
  kJit,           // backup: drafted just in time after a miss
  kNgram,         // backup: n-gram lookup in the prompt and output
  kNone,          // backup: nothing proposed (the round yields one token)
  kSdDraft,       // plain SD: drafted synchronously
};
inline constexpr int kNumSpecSources = 5;

// Timed phases (index of StatsSnapshot::phase_ns and phase_count).
enum class Phase : int {
  kTargetVerify = 0,   // target forward + acceptance, one per round
  kDraftGlue,          // draft glue forward over [r, s1..sK]
  kDraftTree,          // draft fork + tree decode + cache populate
  kDraftJit,           // draft just-in-time backup drafting (on the critical path)
  kWaitForDraft,       // target idle, waiting for the draft
  kDraftPrespeculate,  // a whole pre-speculation (contains glue and tree)
  kTargetMask,         // target token masking (structured output): TokenMasker + apply, inside target_verify
  kDraftMask,          // draft token masking, inside draft_glue / draft_tree / draft_jit
};
inline constexpr int kNumPhases = 8;

// Number of FinishReasons (engine.h; index of StatsSnapshot::requests_finished).
inline constexpr int kNumFinishReasons = 5;

// Names for printing ("auto", "cache_hit", "target_verify", ...); "?" when out of range.
const char* to_string(Backup b) noexcept;
const char* to_string(SpecSource s) noexcept;
const char* to_string(Phase p) noexcept;

struct StatsSnapshot {
  int K = 0;
  std::uint64_t rounds = 0;                      // target verifications (one per batch round)
  std::uint64_t sequence_rounds = 0;             // sum over rounds of the batch size
  std::uint64_t tokens_committed = 0;            // output tokens (after stop conditions)
  std::vector<std::uint64_t> accept_hist;        // [K+1] sequence-rounds with k drafts accepted
  std::vector<std::uint64_t> position_reached;   // [K]
  std::vector<std::uint64_t> position_accepted;  // [K]
  std::vector<std::uint64_t> cache_hits;         // [K+1] lookups whose real outcome k was cached
  std::vector<std::uint64_t> cache_misses;       // [K+1]
  std::vector<std::uint64_t> backup_counts;      // [kNumBackups] sequences served by each backup
  std::vector<std::uint64_t> source_rounds;      // [kNumSpecSources] sequence-rounds by source
  std::vector<std::uint64_t> source_accepted;    // [kNumSpecSources] accepted drafts by source
  std::vector<std::int64_t> phase_ns;            // [kNumPhases] total nanoseconds
  std::vector<std::uint64_t> phase_count;        // [kNumPhases] timed intervals
  std::int64_t draft_overlap_ns = 0;             // draft busy time overlapping target verification
  std::uint64_t draft_windows = 0;               // pre-speculation windows measured against a verify
  std::uint64_t worker_bytes = 0;                // bytes the workers passed each other (ids, lengths, handles)
  std::uint64_t draft_mask_failures = 0;         // draft forwards left unmasked: the TokenMasker threw there
  std::vector<std::uint64_t> requests_finished;  // [kNumFinishReasons] requests that ended, by reason

  // Derived (0 when the denominator is 0).
  std::vector<double> position_acceptance;       // [K] accepted / reached
  std::vector<double> source_mean_accepted;      // [kNumSpecSources] accepted / rounds
  double mean_accepted = 0;                      // mean k
  double mean_accept_length = 0;                 // mean k + 1
  double tokens_per_round = 0;                   // tokens_committed / rounds
  double hit_rate = 0;                           // cache hits / lookups
  std::int64_t draft_busy_ns = 0;                // pre-speculation windows + jit
  double draft_hidden_fraction = 0;              // draft_overlap_ns / draft_busy_ns
  double worker_bytes_per_round = 0;             // worker_bytes / rounds (does not grow with V)

  // Calls f(name, &StatsSnapshot::field) for every field above, in declaration order.
  template <class F>
  static void for_each_field(F&& f) {
    f("K", &StatsSnapshot::K);
    f("rounds", &StatsSnapshot::rounds);
    f("sequence_rounds", &StatsSnapshot::sequence_rounds);
    f("tokens_committed", &StatsSnapshot::tokens_committed);
    f("accept_hist", &StatsSnapshot::accept_hist);
    f("position_reached", &StatsSnapshot::position_reached);
    f("position_accepted", &StatsSnapshot::position_accepted);
    f("cache_hits", &StatsSnapshot::cache_hits);
    f("cache_misses", &StatsSnapshot::cache_misses);
    f("backup_counts", &StatsSnapshot::backup_counts);
    f("source_rounds", &StatsSnapshot::source_rounds);
    f("source_accepted", &StatsSnapshot::source_accepted);
    f("phase_ns", &StatsSnapshot::phase_ns);
    f("phase_count", &StatsSnapshot::phase_count);
    f("draft_overlap_ns", &StatsSnapshot::draft_overlap_ns);
    f("draft_windows", &StatsSnapshot::draft_windows);
    f("worker_bytes", &StatsSnapshot::worker_bytes);
    f("draft_mask_failures", &StatsSnapshot::draft_mask_failures);
    f("requests_finished", &StatsSnapshot::requests_finished);
    f("position_acceptance", &StatsSnapshot::position_acceptance);
    f("source_mean_accepted", &StatsSnapshot::source_mean_accepted);
    f("mean_accepted", &StatsSnapshot::mean_accepted);
    f("mean_accept_length", &StatsSnapshot::mean_accept_length);
    f("tokens_per_round", &StatsSnapshot::tokens_per_round);
    f("hit_rate", &StatsSnapshot::hit_rate);
    f("draft_busy_ns", &StatsSnapshot::draft_busy_ns);
    f("draft_hidden_fraction", &StatsSnapshot::draft_hidden_fraction);
    f("worker_bytes_per_round", &StatsSnapshot::worker_bytes_per_round);
  }
};

}  // namespace ssdcore
