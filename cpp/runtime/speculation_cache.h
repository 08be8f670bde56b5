// speculation_cache.h: SpeculationCache, predicted outcome (seq, k, r) -> ready Speculation.
//
// Concept (SSD_SPEC section 2): while the target verifies round t, the draft predicts outcomes
// (k accepted, next token r) of that verification and pre-drafts a Speculation for each. When the
// real outcome is known the draft looks it up: a hit means the next round's speculation is ready.
// Entries live for exactly one round per sequence:
//   begin_round(seq)           drops whatever the sequence still holds and opens a new round;
//   insert(seq, k, r, spec)    adds a prediction to the open round (false when no round is open);
//   lookup(seq, k, r)          returns the prediction for the real outcome (if any) and consumes the
//                              whole round: every other key is stale once the outcome is known, and
//                              the sequence has no open round until the next begin_round;
//   erase_sequence(seq)        forgets the sequence (finished or cancelled).
// On a hit the returned Speculation has source = SpecSource::kCacheHit. Inserting the same (k, r)
// twice in one round: the later insert wins. Hits and misses are counted by the caller (Stats).
//
// Invariants: 0 <= k <= K and r >= 0 for every key (std::out_of_range otherwise); inserted
// speculations satisfy Speculation::valid(K) (std::invalid_argument otherwise).
//
// Threads: not synchronized. The draft worker owns the cache and is its only user: it populates a
// round after pre-speculating and looks the real outcome up when the target reports it.
#pragma once
#include <cstdint>
#include <optional>
#include <unordered_map>
#include <vector>

#include "engine_config.h"
#include "speculation.h"

namespace ssd {

class SpeculationCache {
 public:
  // K: draft length (positions 0..K; the default accepts every valid EngineConfig.K).
  explicit SpeculationCache(int K = EngineConfig::kMaxK);
  SpeculationCache(const SpeculationCache&) = delete;
  SpeculationCache& operator=(const SpeculationCache&) = delete;

  int K() const { return K_; }

  void begin_round(std::int64_t seq_id);
  // Returns false (and drops spec) when seq_id has no open round.
  bool insert(std::int64_t seq_id, int k, std::int32_t r, Speculation spec);
  std::optional<Speculation> lookup(std::int64_t seq_id, int k, std::int32_t r);

  void erase_sequence(std::int64_t seq_id);
  void clear();  // forget every sequence

  // Introspection.
  std::size_t entries(std::int64_t seq_id) const;  // predictions held for seq_id
  bool round_open(std::int64_t seq_id) const;
  std::size_t size() const;                        // predictions held in all
  std::size_t num_sequences() const;               // sequences with state

 private:
  struct Entry {
    int k = 0;
    std::int32_t r = 0;
    Speculation spec;
  };
  struct SeqState {
    bool open = false;
    std::vector<Entry> entries;
  };
  void check_key(int k, std::int32_t r, const char* what) const;

  const int K_;
  std::unordered_map<std::int64_t, SeqState> seqs_;
};

}  // namespace ssd
