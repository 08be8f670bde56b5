// test_verifier.cpp: hand-worked verification cases on a 4-token vocabulary and row transforms by
// hand (fixtures: verifier_cases.h). Batches, the draft sampler, threading and parameter checks:
// test_verifier_batch.cpp; top-k/top-p selection by brute force: test_distribution.cpp.
#include "verifier_cases.h"

SSD_TEST(greedy_accepts_the_argmax_chain_then_bonus) {
  Case c;
  c.k = 2;
  c.p.target.temperature = 0.0f;
  c.p.draft_len = 2;
  c.target = cat({{0, 1, 5, 2}, {9, 1, 1, 1}, {0, 0, 0, 3}});  // argmax 2, 0, 3
  c.tokens = {2, 0};
  SSD_CHECK(c.run() == res(2, 3));
  c.tokens = {2, 1};  // mismatch at row 1: recovery = argmax row 1
  SSD_CHECK(c.run() == res(1, 0));
  c.tokens = {3, 0};
  SSD_CHECK(c.run() == res(0, 2));
  c.p.draft_len = 0;  // nothing to verify: the bonus comes from row 0
  SSD_CHECK(c.run() == res(0, 2));
  c.p.draft_len = 1;  // bonus from row 1
  c.tokens = {2, 3};
  SSD_CHECK(c.run() == res(1, 0));
}

SSD_TEST(greedy_ties_go_to_the_lowest_index) {
  Case c;
  c.k = 1;
  c.p.target.temperature = 0.0f;
  c.p.draft_len = 1;
  c.target = cat({{1, 4, 4, 0}, {2, 2, 2, 2}});
  c.tokens = {2};
  SSD_CHECK(c.run() == res(0, 1));
  c.tokens = {1};
  SSD_CHECK(c.run() == res(1, 0));
}

SSD_TEST(sampled_equal_p_and_q_always_accepts_and_bonus_follows_p) {
  // p == q on rows 0, 1 (same logits, same params): acceptance is certain (u * q < q for u < 1).
  // Row 2 has one finite logit: the bonus is token 3.
  Case c;
  c.k = 2;
  c.p.draft_len = 2;
  c.target = cat({logp({0.1, 0.2, 0.3, 0.4}), logp({0.25, 0.25, 0.25, 0.25}), logp({0, 0, 0, 1})});
  c.draft = cat({logp({0.1, 0.2, 0.3, 0.4}), logp({0.25, 0.25, 0.25, 0.25})});
  c.tokens = {0, 1};
  for (uint64_t seed = 0; seed < 200; ++seed) SSD_CHECK(c.run(seed, 17) == res(2, 3));
}

SSD_TEST(sampled_zero_target_mass_always_rejects_and_recovers_from_the_residual) {
  // p = [0, .5, .5, 0], proposal 0 from q = [.7, .1, .1, .1]: p(0) = 0 -> reject at row 0.
  // residual max(0, p - q) = [0, .4, .4, 0]: recovery is 1 or 2, about equally often.
  Case c;
  c.k = 1;
  c.p.draft_len = 1;
  c.target = cat({logp({0, 0.5, 0.5, 0}), logp({1, 0, 0, 0})});
  c.draft = logp({0.7, 0.1, 0.1, 0.1});
  c.tokens = {0};
  int counts[4] = {0};
  for (uint64_t seed = 0; seed < 2000; ++seed) {
    auto r = c.run(seed, 3);
    SSD_CHECK_EQ(r.first, 0);
    counts[r.second]++;
  }
  SSD_CHECK_EQ(counts[0] + counts[3], 0);
  SSD_CHECK_NEAR(counts[1], 1000, 120);
}

SSD_TEST(sampled_ratio_test_and_residual_support) {
  // p = [.5, .5, 0, 0], q = [.25, .75, 0, 0], proposal 1: accept with prob .5/.75 = 2/3.
  // residual = max(0, p - q) = [.25, 0, 0, 0]: the recovery token is always 0.
  Case c;
  c.k = 1;
  c.p.draft_len = 1;
  c.target = cat({logp({0.5, 0.5, 0, 0}), logp({0, 0, 1, 0})});
  c.draft = logp({0.25, 0.75, 0, 0});
  c.tokens = {1};
  int accepted = 0;
  const int n = 6000;
  for (uint64_t seed = 0; seed < n; ++seed) {
    auto r = c.run(seed, 0);
    if (r.first == 1) {
      SSD_CHECK_EQ(r.second, 2);  // bonus from row 1
      ++accepted;
    } else {
      SSD_CHECK_EQ(r.second, 0);
    }
  }
  SSD_CHECK_NEAR(accepted / double(n), 2.0 / 3.0, 0.025);
}

SSD_TEST(onehot_proposals_accept_with_p_and_remove_the_token_from_the_residual) {
  // p = [.2, .3, .5, 0], deterministic proposal 1: accept with probability .3; on rejection the
  // recovery is drawn from p without token 1: [.2, 0, .5, 0] / .7.
  Case c;
  c.k = 1;
  c.p.draft_len = 1;
  c.p.onehot = 1;
  c.target = cat({logp({0.2, 0.3, 0.5, 0}), logp({0, 1, 0, 0})});
  c.draft = logp({0.9, 0.1, 0, 0});  // ignored: one-hot
  c.tokens = {1};
  int accepted = 0, zero = 0, two = 0;
  const int n = 6000;
  for (uint64_t seed = 0; seed < n; ++seed) {
    auto r = c.run(seed, 40);
    if (r.first == 1) {
      ++accepted;
      SSD_CHECK_EQ(r.second, 1);
    } else {
      SSD_CHECK(r.second == 0 || r.second == 2);
      (r.second == 0 ? zero : two)++;
    }
  }
  SSD_CHECK_NEAR(accepted / double(n), 0.3, 0.025);
  SSD_CHECK_NEAR(zero / double(zero + two), 0.2 / 0.7, 0.03);
  const auto with_onehot_flag = c.run(5, 40);
  c.draft.clear();  // no draft logits at all: the same one-hot semantics
  c.p.onehot = 0;
  SSD_CHECK(c.run(5, 40) == with_onehot_flag);
}

SSD_TEST(draft_len_moves_the_bonus_row_and_ignores_later_rows) {
  Case c;
  c.k = 3;
  c.p.draft_len = 1;
  c.target = cat({logp({0.25, 0.25, 0.25, 0.25}), logp({0, 0, 1, 0}), {NAN, NAN, NAN, NAN}, {NAN, NAN, NAN, NAN}});
  c.draft = cat({logp({0.25, 0.25, 0.25, 0.25}), {NAN, NAN, NAN, NAN}, {NAN, NAN, NAN, NAN}});
  c.tokens = {3, -5, 99};  // tokens past draft_len are not read
  for (uint64_t seed = 0; seed < 50; ++seed) SSD_CHECK(c.run(seed, 0) == res(1, 2));
}

SSD_TEST(temperature_top_k_top_p_by_hand) {
  const std::vector<float> row = logp({0.5, 0.3, 0.15, 0.05});
  SamplingTransform sp;
  auto p = probs_of(row, sp);
  SSD_CHECK_NEAR(p[0], 0.5, 1e-6);
  SSD_CHECK_NEAR(p[3], 0.05, 1e-6);
  sp.temperature = 0.5f;  // p^2 normalised: .25, .09, .0225, .0025 / .365
  p = probs_of(row, sp);
  SSD_CHECK_NEAR(p[0], 0.25 / 0.365, 1e-6);
  SSD_CHECK_NEAR(p[2], 0.0225 / 0.365, 1e-6);
  sp = SamplingTransform{};
  sp.top_k = 2;
  p = probs_of(row, sp);
  SSD_CHECK_NEAR(p[0], 0.625, 1e-6);
  SSD_CHECK_NEAR(p[1], 0.375, 1e-6);
  SSD_CHECK_EQ(p[2], 0.0);
  sp = SamplingTransform{};
  sp.top_p = 0.7f;  // .5 < .7 <= .8: keep {0, 1}
  p = probs_of(row, sp);
  SSD_CHECK_NEAR(p[0], 0.625, 1e-6);
  SSD_CHECK_EQ(p[2], 0.0);
  sp.top_p = 0.85f;  // keep {0, 1, 2}
  p = probs_of(row, sp);
  SSD_CHECK_NEAR(p[2], 0.15 / 0.95, 1e-6);
  SSD_CHECK_EQ(p[3], 0.0);
  sp.top_p = 0.3f;  // the top token alone reaches it
  p = probs_of(row, sp);
  SSD_CHECK_EQ(p[0], 1.0);
  sp = SamplingTransform{};
  sp.top_k = 3;
  sp.top_p = 0.6f;  // top-k first: [.5, .3, .15] / .95 -> .526 < .6 <= .842: keep {0, 1}
  p = probs_of(row, sp);
  SSD_CHECK_NEAR(p[1], 0.375, 1e-6);
  SSD_CHECK_EQ(p[2], 0.0);
  // Ties: equal logits rank by index.
  const std::vector<float> flat = {1, 1, 1, 1};
  sp = SamplingTransform{};
  sp.top_k = 2;
  p = probs_of(flat, sp);
  SSD_CHECK(p[0] == 0.5 && p[1] == 0.5 && p[2] == 0.0 && p[3] == 0.0);
  sp.temperature = 0.0f;
  p = probs_of(row, sp);
  SSD_CHECK(p[0] == 1.0 && p[1] == 0.0);
}

SSD_TEST(saguaro_renormalisation_by_hand) {
  // q = [.4, .3, .2, .1], F = 2, C = .5: q' = [.2, .15, .2, .1] / .65.
  const std::vector<float> row = logp({0.4, 0.3, 0.2, 0.1});
  SaguaroParams sg;
  sg.c = 0.5f;
  sg.fanout = 2;
  auto q = probs_of(row, SamplingTransform{}, sg);
  SSD_CHECK_NEAR(q[0], 0.2 / 0.65, 1e-6);
  SSD_CHECK_NEAR(q[1], 0.15 / 0.65, 1e-6);
  SSD_CHECK_NEAR(q[2], 0.2 / 0.65, 1e-6);
  SSD_CHECK_NEAR(q[3], 0.1 / 0.65, 1e-6);
  sg.c = 0.0f;  // top set removed: q' = [0, 0, .2, .1] / .3
  q = probs_of(row, SamplingTransform{}, sg);
  SSD_CHECK_EQ(q[0], 0.0);
  SSD_CHECK_NEAR(q[2], 2.0 / 3.0, 1e-6);
  sg.fanout = 4;  // C = 0 over the whole support would leave nothing: falls back to q
  q = probs_of(row, SamplingTransform{}, sg);
  SSD_CHECK_NEAR(q[0], 0.4, 1e-6);
  // In verification: proposal 2 from q' with target p = q' exactly -> always accepted.
  Case c;
  c.k = 1;
  c.p.draft_len = 1;
  c.p.saguaro_c = 0.5f;
  c.fanout = {2};
  c.target = cat({logp({0.2 / 0.65, 0.15 / 0.65, 0.2 / 0.65, 0.1 / 0.65}), logp({1, 0, 0, 0})});
  c.draft = row;
  c.tokens = {2};
  int accepted = 0;
  for (uint64_t seed = 0; seed < 400; ++seed) accepted += c.run(seed, 9).first == 1;
  SSD_CHECK(accepted >= 398);  // p and q' agree to float rounding
}


int main() { return ssd_test::run_all(); }
