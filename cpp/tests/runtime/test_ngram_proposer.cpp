// test_ngram_proposer.cpp: ngram_propose prefers the longest match (n from max_n down to min_n), the
// most recent occurrence, copies up to `count` tokens (running into its own proposals when the match
// is recent) and proposes nothing without a match of at least min_n tokens.
#include <cstdint>
#include <vector>

#include "check.h"
#include "ngram_proposer.h"

using ssd::ngram_propose;
using Tokens = std::vector<std::int32_t>;

SSD_TEST(longest_match_wins_over_a_more_recent_shorter_one) {
  // suffix "1 2 3": the 3-gram occurs at 0 (followed by 7 8); the 2-gram "2 3" also at 5 (then 9).
  const Tokens ctx = {1, 2, 3, 7, 8, 2, 3, 9, 4, 1, 2, 3};
  SSD_CHECK(ngram_propose(ctx, 1, 3, 2) == (Tokens{7, 8}));
  SSD_CHECK(ngram_propose(ctx, 1, 2, 1) == (Tokens{9}));  // max_n = 2: the latest "2 3" wins
}

SSD_TEST(most_recent_occurrence_of_the_same_length) {
  const Tokens ctx = {5, 6, 1, 5, 6, 2, 0, 5, 6};
  SSD_CHECK(ngram_propose(ctx, 1, 2, 1) == (Tokens{2}));  // "5 6" at 3 (then 2), not at 0 (then 1)
  SSD_CHECK(ngram_propose(ctx, 1, 2, 3) == (Tokens{2, 0, 5}));
}

SSD_TEST(proposes_up_to_count_and_overlaps_its_own_copy) {
  const Tokens ctx = {4, 1, 2, 1, 2};  // "1 2" last at 1: continuation 1 2, then its own proposals
  SSD_CHECK(ngram_propose(ctx, 1, 2, 5) == (Tokens{1, 2, 1, 2, 1}));
  SSD_CHECK(ngram_propose(ctx, 1, 2, 0).empty());
  SSD_CHECK(ngram_propose({7, 7}, 1, 3, 3) == (Tokens{7, 7, 7}));
}

SSD_TEST(min_n_rejects_short_matches) {
  const Tokens ctx = {1, 2, 3, 9, 3};  // only a 1-gram ("3") repeats
  SSD_CHECK(ngram_propose(ctx, 1, 3, 2) == (Tokens{9, 3}));
  SSD_CHECK(ngram_propose(ctx, 2, 3, 2).empty());
  SSD_CHECK(ngram_propose(ctx, 4, 3, 2).empty());  // max_n < min_n: nothing
}

SSD_TEST(no_match_or_tiny_context_proposes_nothing) {
  SSD_CHECK(ngram_propose({1, 2, 3, 4}, 1, 3, 4).empty());
  SSD_CHECK(ngram_propose({1}, 1, 3, 4).empty());
  SSD_CHECK(ngram_propose({}, 1, 3, 4).empty());
}

int main() { return ssd_test::run_all(); }
