// speculation_cache.h: SpeculationCache, predicted outcome (seq, k, r) -> ready Speculation.
//
// Concept (SSD_SPEC section 2): while the target verifies round t, the draft predicts outcomes
// (k accepted, next token r) of that verification and pre-drafts a Speculation for each. When the
// target knows the real outcome it looks it up: a hit means the next round's speculation is ready.
// Entries live for exactly one round per sequence:
//   begin_round(seq)           drops whatever the sequence still holds and opens a new round;
//   insert(seq, k, r, spec)    adds a prediction to the open round (false when no round is open);
//   lookup(seq, k, r)          returns the prediction for the real outcome (if any) and consumes the
//                              whole round: every other key is stale once the outcome is known, and
//                              the sequence has no open round until the next begin_round;
//   erase_sequence(seq)        forgets the sequence (finished or cancelled).
// Optional round tags: begin_round(seq, tag) / lookup(seq, k, r, tag) with different tags is a miss
// (and discards the entries), protecting against a late populate of an old round being served.
// Defaults (tag 0 on both sides) always match.
//
// On a hit the returned Speculation has source = SpecSource::kCacheHit. Every lookup records a hit or
// miss at position k in the cache's own per-position counters and, when given, in a Stats.
// Inserting the same (k, r) twice in one round: the later insert wins.
//
// Invariants: 0 <= k <= K and r >= 0 for every key (std::out_of_range otherwise); inserted
// speculations satisfy Speculation::valid(K) (std::invalid_argument otherwise).
//
// Threads: the draft thread inserts and the target thread looks up, never concurrently for the same
// round (the lead's protocol hands off through a Channel). Every method is nevertheless internally
// synchronized by one mutex and safe from any thread. The mutex is held only for O(1) map/vector
// operations: lookup and begin_round move the round's entries out under the lock, then search and
// free them outside it.
#pragma once
#include <cstdint>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <vector>

#include "engine_config.h"
#include "speculation.h"
#include "stats.h"

namespace ssd {

// Result of SpeculationCache::lookup_detailed.
struct CacheLookup {
  std::optional<Speculation> spec;  // the prediction for the real outcome, if it was cached
  int prepared_at_k = 0;            // entries the round held at position k (the fan-out F_k used)
  int prepared_total = 0;           // entries the round held in all
  bool round_open = false;          // false: nothing was begun for this sequence (e.g. after prefill)
                                    // or the round tag did not match
};

class SpeculationCache {
 public:
  struct Entry {
    int k = 0;
    std::int32_t r = 0;
    Speculation spec;
  };

  // K: draft length (positions 0..K; the default accepts every valid EngineConfig.K). stats: optional,
  // not owned, must outlive the cache and have stats->K() >= K (std::invalid_argument otherwise).
  // Give the cache a Stats OR call Stats::record_lookup yourself, not both (double counting).
  explicit SpeculationCache(int K = EngineConfig::kMaxK, Stats* stats = nullptr);
  SpeculationCache(const SpeculationCache&) = delete;
  SpeculationCache& operator=(const SpeculationCache&) = delete;

  int K() const { return K_; }

  void begin_round(std::int64_t seq_id, std::uint64_t round_tag = 0);
  // Returns false (and drops spec) when seq_id has no open round.
  bool insert(std::int64_t seq_id, int k, std::int32_t r, Speculation spec);
  // All of a sequence's predictions at once (one lock); returns how many were stored (0 or all).
  std::size_t insert_batch(std::int64_t seq_id, std::vector<Entry> entries);

  std::optional<Speculation> lookup(std::int64_t seq_id, int k, std::int32_t r,
                                    std::uint64_t round_tag = 0);
  CacheLookup lookup_detailed(std::int64_t seq_id, int k, std::int32_t r, std::uint64_t round_tag = 0);

  void erase_sequence(std::int64_t seq_id);
  void clear();  // forget every sequence (counters are kept)

  // Introspection (any thread; a snapshot).
  std::size_t entries(std::int64_t seq_id) const;  // predictions held for seq_id
  bool round_open(std::int64_t seq_id) const;
  std::size_t size() const;                        // predictions held in all
  std::size_t num_sequences() const;               // sequences with state
  std::vector<std::uint64_t> hits() const;         // [K+1] per outcome position k
  std::vector<std::uint64_t> misses() const;       // [K+1]

 private:
  struct SeqState {
    bool open = false;
    std::uint64_t tag = 0;
    std::vector<Entry> entries;
  };
  void check_key(int k, std::int32_t r, const char* what) const;
  void check_spec(const Speculation& spec) const;
  void count(int k, bool hit);

  const int K_;
  Stats* const stats_;
  mutable std::mutex m_;
  std::unordered_map<std::int64_t, SeqState> seqs_;
  std::vector<std::uint64_t> hits_, misses_;
};

}  // namespace ssd
