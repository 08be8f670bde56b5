// ssdcore/stats.h: ssdcore::Stats, a snapshot of what an engine measured since it started (or since
// Engine::reset_stats()).
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

// What made a speculation on a cache miss (index of Stats::backup_counts).
enum class Backup : int { kAuto = 0, kJit, kNgram, kNone };
inline constexpr int kNumBackups = 4;

// How the tokens a round verified were proposed (index of Stats::source_*).
enum class SpecSource : int {
  kCacheHit = 0,  // pre-speculated by the draft during the previous verification (SSD hit)
  kJit,           // backup: drafted just in time after a miss
  kNgram,         // backup: n-gram lookup in the prompt and output
  kNone,          // backup: nothing proposed (the round yields one token)
  kSdDraft,       // plain SD: drafted synchronously
};
inline constexpr int kNumSpecSources = 5;

// Timed phases (index of Stats::phase_ns and Stats::phase_count).
enum class Phase : int {
  kTargetVerify = 0,   // target forward + acceptance, one per round
  kDraftGlue,          // draft glue forward over [r, s1..sK]
  kDraftTree,          // draft fork + tree decode + cache populate
  kDraftJit,           // draft just-in-time backup drafting (on the critical path)
  kWaitForDraft,       // target idle, waiting for the draft
  kDraftPrespeculate,  // a whole pre-speculation (contains glue and tree)
};
inline constexpr int kNumPhases = 6;

// Names for printing ("auto", "cache_hit", "target_verify", ...); "?" when out of range.
const char* to_string(Backup b) noexcept;
const char* to_string(SpecSource s) noexcept;
const char* to_string(Phase p) noexcept;

struct Stats {
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
};

}  // namespace ssdcore
