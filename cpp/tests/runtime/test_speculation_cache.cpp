// test_speculation_cache.cpp: SpeculationCache round life cycle, lookups and validation.
#include <cstdint>
#include <memory>
#include <vector>

#include "check.h"
#include "speculation_cache.h"

using ssd::SpecSource;
using ssd::Speculation;
using ssd::SpeculationCache;

static Speculation sampled(std::vector<std::int32_t> toks, float tag = 0.f) {
  auto rows = std::make_shared<std::vector<float>>(toks.size() * 4, tag);
  ssd::Logits logits;
  logits.data = rows->data(), logits.rows = static_cast<int64_t>(toks.size()), logits.vocab = 4, logits.owner = rows;
  Speculation s;
  for (size_t i = 0; i < toks.size(); ++i) s.q.push_back(ssd::LogitsRow{logits, static_cast<int64_t>(i)});
  s.tokens = std::move(toks);
  s.source = SpecSource::kJit;
  s.saguaro_f.assign(s.tokens.size(), 2);
  return s;
}

SSD_TEST(speculation_validity) {
  SSD_CHECK(Speculation{}.valid(4));  // empty: no rows needed
  SSD_CHECK(sampled({1, 2, 3}).valid(4));
  SSD_CHECK(!sampled({1, 2, 3, 4, 5}).valid(4));  // longer than K
  Speculation onehot;
  onehot.tokens = {5, 6};
  onehot.onehot = true;
  SSD_CHECK(onehot.valid(4));
  Speculation no_rows;
  no_rows.tokens = {1};
  SSD_CHECK(!no_rows.valid(4));  // sampled but nowhere to find q
  Speculation onehot_with_rows = sampled({1});
  onehot_with_rows.onehot = true;
  SSD_CHECK(!onehot_with_rows.valid(4));
  Speculation bad_f = sampled({1, 2});
  bad_f.saguaro_f = {1};
  SSD_CHECK(!bad_f.valid(4));
  Speculation neg = onehot;
  neg.tokens = {-1};
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

  std::optional<Speculation> r = cache.lookup(7, 0, 100);
  SSD_CHECK(r.has_value());
  SSD_CHECK(r->tokens == std::vector<std::int32_t>({1, 2, 3, 4}));
  SSD_CHECK(r->q.size() == 4 && r->q[0].data()[0] == 0.5f);
  SSD_CHECK(r->source == SpecSource::kCacheHit);

  // Consumed: the other keys are stale now, and inserts need a new round.
  SSD_CHECK_EQ(cache.entries(7), 0u);
  SSD_CHECK(!cache.round_open(7));
  SSD_CHECK(!cache.lookup(7, 0, 101).has_value());
  SSD_CHECK(!cache.insert(7, 1, 3, sampled({1})));
}

SSD_TEST(miss_consumes_the_round) {
  SpeculationCache cache(3);
  cache.begin_round(1);
  for (int r = 0; r < 5; ++r) SSD_CHECK(cache.insert(1, 2, r, sampled({1})));
  SSD_CHECK(cache.insert(1, 3, 0, sampled({1})));
  SSD_CHECK(!cache.lookup(1, 2, 77).has_value());  // r not prepared at k = 2
  SSD_CHECK(!cache.round_open(1));
  SSD_CHECK_EQ(cache.entries(1), 0u);
  SSD_CHECK(!cache.lookup(1, 3, 0).has_value());  // stale once the outcome is known
}

SSD_TEST(cold_sequence_is_a_miss) {
  SpeculationCache cache(2);
  SSD_CHECK(!cache.lookup(42, 1, 5).has_value());  // first round after prefill
  SSD_CHECK(!cache.round_open(42));
  SSD_CHECK(!cache.insert(42, 0, 1, sampled({1})));  // no round begun
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

SSD_TEST(validation) {
  SpeculationCache cache(2);
  cache.begin_round(1);
  SSD_CHECK_THROWS(cache.insert(1, 3, 0, sampled({1})));     // k > K
  SSD_CHECK_THROWS(cache.insert(1, -1, 0, sampled({1})));    // k < 0
  SSD_CHECK_THROWS(cache.insert(1, 0, -5, sampled({1})));    // r < 0
  SSD_CHECK_THROWS(cache.insert(1, 0, 0, sampled({1, 2, 3})));  // longer than K
  SSD_CHECK_THROWS(cache.lookup(1, 3, 0));
  SSD_CHECK_THROWS(SpeculationCache(-1));
}

int main() { return ssd_test::run_all(); }
