// test_speculation_cache.cpp: SpeculationCache round life cycle, hit/miss accounting, validation, and
// a two-thread draft/target handoff through Channels.
#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "channel.h"
#include "check.h"
#include "speculation_cache.h"
#include "stats.h"
#include "stress_util.h"

using ssd::SpecSource;
using ssd::Speculation;
using ssd::SpeculationCache;

static Speculation sampled(std::vector<std::int32_t> toks, float tag = 0.f) {
  auto rows = std::make_shared<std::vector<float>>(toks.size() * 4, tag);
  Speculation s = Speculation::make_sampled(std::move(toks), rows, SpecSource::kCacheHit);
  s.saguaro_f.assign(s.tokens.size(), 2);
  return s;
}

SSD_TEST(speculation_validity) {
  SSD_CHECK(Speculation{}.valid(4));  // empty: no rows needed
  SSD_CHECK(sampled({1, 2, 3}).valid(4));
  SSD_CHECK(!sampled({1, 2, 3, 4, 5}).valid(4));  // longer than K
  SSD_CHECK(Speculation::make_onehot({5, 6}, SpecSource::kNgram).valid(4));
  SSD_CHECK(Speculation::make_sampled_in_block({5, 6}, 3, 10, SpecSource::kJit).valid(4));
  Speculation no_rows;
  no_rows.tokens = {1};
  SSD_CHECK(!no_rows.valid(4));  // sampled but nowhere to find q
  Speculation onehot_with_rows = sampled({1});
  onehot_with_rows.onehot = true;
  SSD_CHECK(!onehot_with_rows.valid(4));
  Speculation bad_f = sampled({1, 2});
  bad_f.saguaro_f = {1};
  SSD_CHECK(!bad_f.valid(4));
  Speculation neg = Speculation::make_onehot({-1}, SpecSource::kNgram);
  SSD_CHECK(!neg.valid(4));
}

SSD_TEST(hit_returns_entry_and_consumes_round) {
  SpeculationCache cache(4);
  cache.begin_round(7);
  SSD_CHECK(cache.insert(7, 0, 100, sampled({1, 2, 3, 4}, 0.5f)));
  SSD_CHECK(cache.insert(7, 0, 101, sampled({9})));
  SSD_CHECK(cache.insert(7, 4, 100, sampled({5})));
  SSD_CHECK_EQ(cache.entries(7), 3u);
  SSD_CHECK(cache.round_open(7));

  ssd::CacheLookup r = cache.lookup_detailed(7, 0, 100);
  SSD_CHECK(r.spec.has_value());
  SSD_CHECK(r.round_open);
  SSD_CHECK_EQ(r.prepared_at_k, 2);
  SSD_CHECK_EQ(r.prepared_total, 3);
  SSD_CHECK(r.spec->tokens == std::vector<std::int32_t>({1, 2, 3, 4}));
  SSD_CHECK(r.spec->q != nullptr && (*r.spec->q)[0] == 0.5f);
  SSD_CHECK(r.spec->source == SpecSource::kCacheHit);

  // Consumed: the other keys are stale now, and inserts need a new round.
  SSD_CHECK_EQ(cache.entries(7), 0u);
  SSD_CHECK(!cache.round_open(7));
  SSD_CHECK(!cache.lookup(7, 0, 101).has_value());
  SSD_CHECK(!cache.insert(7, 1, 3, sampled({1})));
  SSD_CHECK_EQ(cache.hits()[0], 1u);
  SSD_CHECK_EQ(cache.misses()[0], 1u);
}

SSD_TEST(miss_reports_fan_out_at_k) {
  SpeculationCache cache(3);
  cache.begin_round(1);
  for (int r = 0; r < 5; ++r) SSD_CHECK(cache.insert(1, 2, r, sampled({1})));
  SSD_CHECK(cache.insert(1, 3, 0, sampled({1})));
  ssd::CacheLookup miss = cache.lookup_detailed(1, 2, 77);
  SSD_CHECK(!miss.spec.has_value());
  SSD_CHECK(miss.round_open);
  SSD_CHECK_EQ(miss.prepared_at_k, 5);
  SSD_CHECK_EQ(miss.prepared_total, 6);
  SSD_CHECK_EQ(cache.misses()[2], 1u);
  SSD_CHECK_EQ(cache.hits()[2], 0u);
}

SSD_TEST(cold_sequence_is_a_miss) {
  SpeculationCache cache(2);
  ssd::CacheLookup r = cache.lookup_detailed(42, 1, 5);  // first round after prefill
  SSD_CHECK(!r.spec.has_value());
  SSD_CHECK(!r.round_open);
  SSD_CHECK_EQ(r.prepared_total, 0);
  SSD_CHECK(!cache.insert(42, 0, 1, sampled({1})));  // no round begun
  SSD_CHECK_EQ(cache.misses()[1], 1u);
}

SSD_TEST(begin_round_discards_previous_round) {
  SpeculationCache cache(2);
  cache.begin_round(3);
  SSD_CHECK(cache.insert(3, 1, 10, sampled({1})));
  cache.begin_round(3);  // e.g. the draft re-populates: old entries go
  SSD_CHECK_EQ(cache.entries(3), 0u);
  SSD_CHECK(cache.insert(3, 1, 11, sampled({2})));
  SSD_CHECK(!cache.lookup(3, 1, 10).has_value());
}

SSD_TEST(later_insert_of_same_key_wins) {
  SpeculationCache cache(2);
  cache.begin_round(3);
  SSD_CHECK(cache.insert(3, 1, 10, sampled({1})));
  SSD_CHECK(cache.insert(3, 1, 10, sampled({2})));
  auto s = cache.lookup(3, 1, 10);
  SSD_CHECK(s.has_value() && s->tokens[0] == 2);
}

SSD_TEST(sequences_are_independent_and_erasable) {
  SpeculationCache cache(2);
  cache.begin_round(1);
  cache.begin_round(2);
  SSD_CHECK(cache.insert(1, 0, 5, sampled({1})));
  SSD_CHECK(cache.insert(2, 0, 5, sampled({2})));
  SSD_CHECK_EQ(cache.size(), 2u);
  SSD_CHECK_EQ(cache.num_sequences(), 2u);
  auto s = cache.lookup(2, 0, 5);
  SSD_CHECK(s.has_value() && s->tokens[0] == 2);
  SSD_CHECK_EQ(cache.entries(1), 1u);  // untouched by sequence 2's lookup
  cache.erase_sequence(1);
  SSD_CHECK_EQ(cache.num_sequences(), 1u);
  SSD_CHECK(!cache.lookup(1, 0, 5).has_value());
  cache.erase_sequence(12345);  // unknown: no-op
  cache.clear();
  SSD_CHECK_EQ(cache.num_sequences(), 0u);
}

SSD_TEST(round_tags_reject_stale_rounds) {
  SpeculationCache cache(2);
  cache.begin_round(1, /*round_tag=*/5);
  SSD_CHECK(cache.insert(1, 0, 9, sampled({1})));
  ssd::CacheLookup stale = cache.lookup_detailed(1, 0, 9, /*round_tag=*/6);
  SSD_CHECK(!stale.spec.has_value());
  SSD_CHECK(!stale.round_open);
  SSD_CHECK_EQ(cache.entries(1), 0u);  // discarded
  cache.begin_round(1, 6);
  SSD_CHECK(cache.insert(1, 0, 9, sampled({1})));
  SSD_CHECK(cache.lookup(1, 0, 9, 6).has_value());
}

SSD_TEST(insert_batch) {
  SpeculationCache cache(2);
  std::vector<SpeculationCache::Entry> entries;
  entries.push_back({0, 1, sampled({1})});
  entries.push_back({2, 3, sampled({2, 2})});
  SSD_CHECK_EQ(cache.insert_batch(4, entries), 0u);  // no round
  cache.begin_round(4);
  SSD_CHECK_EQ(cache.insert_batch(4, entries), 2u);
  SSD_CHECK_EQ(cache.insert_batch(4, entries), 2u);  // appends
  SSD_CHECK_EQ(cache.entries(4), 4u);
  auto s = cache.lookup(4, 2, 3);
  SSD_CHECK(s.has_value() && s->tokens.size() == 2);
}

SSD_TEST(validation) {
  SpeculationCache cache(2);
  cache.begin_round(1);
  SSD_CHECK_THROWS(cache.insert(1, 3, 0, sampled({1})));     // k > K
  SSD_CHECK_THROWS(cache.insert(1, -1, 0, sampled({1})));    // k < 0
  SSD_CHECK_THROWS(cache.insert(1, 0, -5, sampled({1})));    // r < 0
  SSD_CHECK_THROWS(cache.insert(1, 0, 0, sampled({1, 2, 3})));  // longer than K
  SSD_CHECK_THROWS(cache.lookup(1, 3, 0));
  SSD_CHECK_THROWS(SpeculationCache(-1));
  ssd::Stats small(1);
  SSD_CHECK_THROWS(SpeculationCache(2, &small));  // stats too small for K
}

SSD_TEST(records_into_stats) {
  ssd::Stats stats(3);
  SpeculationCache cache(3, &stats);
  cache.begin_round(1);
  SSD_CHECK(cache.insert(1, 3, 8, sampled({1})));
  SSD_CHECK(cache.lookup(1, 3, 8).has_value());
  SSD_CHECK(!cache.lookup(1, 1, 8).has_value());
  auto snap = stats.snapshot();
  SSD_CHECK_EQ(snap.cache_hits[3], 1u);
  SSD_CHECK_EQ(snap.cache_misses[1], 1u);
  SSD_CHECK_NEAR(snap.hit_rate, 0.5, 1e-12);
}

// The real access pattern: the draft thread populates a round, hands off through a Channel, the target
// thread looks up its outcome and sends the next outcome back. Every round must hit.
SSD_TEST(draft_target_handoff_through_channels) {
  constexpr int kSeqs = 4, K = 3;
  const int rounds = static_cast<int>(ssd_test::scaled(2000, 4));
  SpeculationCache cache(K);
  ssd::Channel<int> populated(2), outcome(2);
  std::atomic<int> hits{0};
  std::thread draft([&] {
    for (int round = 0; round < rounds; ++round) {
      for (int s = 0; s < kSeqs; ++s) {
        cache.begin_round(s, static_cast<std::uint64_t>(round));
        for (int k = 0; k <= K; ++k) cache.insert(s, k, round % 7, sampled({round % 100}));
      }
      populated.push(round);
      int ack = 0;
      if (!outcome.pop(ack)) return;
    }
  });
  for (int round = 0; round < rounds; ++round) {
    int r = -1;
    SSD_CHECK(populated.pop(r));
    for (int s = 0; s < kSeqs; ++s) {
      auto spec = cache.lookup(s, (round + s) % (K + 1), round % 7, static_cast<std::uint64_t>(round));
      if (spec && spec->tokens[0] == round % 100) hits++;
    }
    outcome.push(round);
  }
  draft.join();
  SSD_CHECK_EQ(hits.load(), rounds * kSeqs);
  SSD_CHECK_EQ(cache.size(), 0u);
}

int main() { return ssd_test::run_all(); }
