// test_verifier.cpp: hand-worked verification cases on a 4-token vocabulary, row transforms by hand,
// the draft sampler, threading, and parameter checks. (Top-k/top-p selection by brute force:
// test_distribution.cpp.)
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

#include "check.h"
#include "distribution.h"
#include "draft_sampler.h"
#include "verifier.h"

using namespace ssd;

namespace {

constexpr float kNegInf = -INFINITY;

std::pair<int64_t, int64_t> res(int64_t accept_len, int64_t next_token) { return {accept_len, next_token}; }

// One-sequence batch helper; rows are V=4 logits.
// Pointers to the rows of a dense [n, V] buffer (VerifyBatch::draft_rows); empty when dense is.
std::vector<const float*> row_ptrs(const std::vector<float>& dense, int64_t V) {
  std::vector<const float*> rows;
  for (size_t r = 0; r * V < dense.size(); ++r) rows.push_back(dense.data() + r * V);
  return rows;
}

struct Case {
  int k = 0;
  std::vector<float> target;  // (k+1)*4
  std::vector<float> draft;   // k*4 (empty: one-hot proposals)
  std::vector<int64_t> tokens;
  std::vector<int32_t> fanout;
  SeqVerifyParams p;

  Case() {
    p.target.temperature = 1.0f;
    p.draft.temperature = 1.0f;
  }
  std::pair<int64_t, int64_t> run(uint64_t seed = 0, int64_t position = 0) {
    p.seed = seed;
    p.position = position;
    VerifyBatch vb;
    vb.batch = 1;
    vb.k = k;
    vb.vocab = 4;
    vb.target_logits = target.data();
    vb.draft_tokens = tokens.data();
    const std::vector<const float*> rows = row_ptrs(draft, 4);
    vb.draft_rows = rows.empty() ? nullptr : rows.data();
    vb.saguaro_fanout = fanout.empty() ? nullptr : fanout.data();
    vb.params = &p;
    int64_t acc = -1, next = -1;
    verify_cpu(vb, VerifyResult{&acc, &next}, 1);
    return {acc, next};
  }
};

std::vector<float> logp(std::vector<double> probs) {
  std::vector<float> out;
  for (double x : probs) out.push_back(x > 0 ? static_cast<float>(std::log(x)) : kNegInf);
  return out;
}

std::vector<float> cat(std::initializer_list<std::vector<float>> rows) {
  std::vector<float> out;
  for (const auto& r : rows) out.insert(out.end(), r.begin(), r.end());
  return out;
}

std::vector<double> probs_of(const std::vector<float>& row, SamplingTransform sp, SaguaroParams sg = {}) {
  RowScratch sc;
  const RowStats s = compute_row_stats(row.data(), 4, sp, sg, sc, nullptr);
  std::vector<double> out;
  for (int t = 0; t < 4; ++t) out.push_back(token_prob(s, row[t], t));
  return out;
}

}  // namespace

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

SSD_TEST(results_do_not_depend_on_batch_composition) {
  const int V = 4, K = 2;
  std::vector<float> target, draft;
  std::vector<int64_t> tokens;
  std::vector<SeqVerifyParams> params(3);
  for (int b = 0; b < 3; ++b) {  // distinct rows per sequence, so a row-indexing slip would show
    const double e = 0.05 * b;
    auto t = cat({logp({0.1 + e, 0.2, 0.3, 0.4 - e}), logp({0.4, 0.3 - e, 0.2 + e, 0.1}), logp({0.25, 0.25, 0.25 + e, 0.25 - e})});
    auto d = cat({logp({0.4 - e, 0.3, 0.2, 0.1 + e}), logp({0.1, 0.2 + e, 0.3, 0.4 - e})});
    target.insert(target.end(), t.begin(), t.end());
    draft.insert(draft.end(), d.begin(), d.end());
    tokens.push_back(0);
    tokens.push_back(3);
    params[b].draft_len = 2;
    params[b].seed = 1000 + b;
    params[b].position = 50 * b;
  }
  VerifyBatch vb;
  vb.batch = 3;
  vb.k = K;
  vb.vocab = V;
  vb.target_logits = target.data();
  vb.draft_tokens = tokens.data();
  const std::vector<const float*> rows = row_ptrs(draft, V);
  vb.draft_rows = rows.data();
  vb.params = params.data();
  int64_t acc[3], next[3];
  verify_cpu(vb, VerifyResult{acc, next}, 2);
  for (int b = 0; b < 3; ++b) {
    VerifyBatch one = vb;
    one.batch = 1;
    one.target_logits += b * (K + 1) * V;
    one.draft_rows += b * K;
    one.draft_tokens += b * K;
    one.params += b;
    int64_t a1, n1;
    verify_cpu(one, VerifyResult{&a1, &n1}, 1);
    SSD_CHECK_EQ(a1, acc[b]);
    SSD_CHECK_EQ(n1, next[b]);
  }
}

SSD_TEST(draft_sampler_follows_q_prime) {
  // q' = [.2, .15, .2, .1] / .65 (Saguaro as above); 20000 rows with different positions.
  const int n = 20000;
  const std::vector<float> row = logp({0.4, 0.3, 0.2, 0.1});
  std::vector<float> logits;
  std::vector<DraftRowParams> params(n);
  for (int r = 0; r < n; ++r) {
    logits.insert(logits.end(), row.begin(), row.end());
    params[r].saguaro.c = 0.5f;
    params[r].saguaro.fanout = 2;
    params[r].seed = 3;
    params[r].position = r;
  }
  std::vector<int64_t> tokens(n);
  std::vector<float> probs(static_cast<size_t>(n) * 4);
  sample_draft_cpu(DraftBatch{n, 4, logits.data(), params.data()}, DraftResult{tokens.data(), probs.data()}, 2);
  int counts[4] = {0};
  for (int64_t t : tokens) counts[t]++;
  const double expect[4] = {0.2 / 0.65, 0.15 / 0.65, 0.2 / 0.65, 0.1 / 0.65};
  for (int t = 0; t < 4; ++t) {
    SSD_CHECK_NEAR(counts[t] / double(n), expect[t], 0.015);
    SSD_CHECK_NEAR(probs[t], expect[t], 1e-6);
  }
}

SSD_TEST(threaded_results_equal_single_threaded) {
  // Large enough for the thread pool: eager row computation (B < threads) and per-sequence threads.
  const int k = 2, v = 30000;
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  for (int b : {3, 9}) {
    std::vector<float> target(static_cast<size_t>(b) * (k + 1) * v), draft(static_cast<size_t>(b) * k * v);
    for (float& x : target) x = normal(rng);
    for (size_t i = 0; i < draft.size(); ++i) draft[i] = target[i / (k * v) * (k + 1) * v + i % (k * v)] + 0.3f;
    std::vector<DraftRowParams> dp(static_cast<size_t>(b) * k);
    std::vector<SeqVerifyParams> params(b);
    for (int s = 0; s < b; ++s) {
      params[s].draft_len = s % (k + 1);
      params[s].seed = 77 + s;
      params[s].target.top_p = s % 2 ? 0.9f : 1.0f;
      params[s].draft = params[s].target;
      for (int i = 0; i < k; ++i) {
        dp[s * k + i].sampling = params[s].draft;
        dp[s * k + i].seed = params[s].seed;
        dp[s * k + i].position = i;
      }
    }
    std::vector<int64_t> tok1(dp.size()), tok4(dp.size());
    sample_draft_cpu(DraftBatch{b * k, v, draft.data(), dp.data()}, DraftResult{tok1.data(), nullptr}, 1);
    sample_draft_cpu(DraftBatch{b * k, v, draft.data(), dp.data()}, DraftResult{tok4.data(), nullptr}, 4);
    SSD_CHECK(tok1 == tok4);
    VerifyBatch vb;
    vb.batch = b;
    vb.k = k;
    vb.vocab = v;
    vb.target_logits = target.data();
    vb.draft_tokens = tok1.data();
    const std::vector<const float*> rows = row_ptrs(draft, v);
    vb.draft_rows = rows.data();
    vb.params = params.data();
    std::vector<int64_t> a1(b), n1(b), a4(b), n4(b);
    verify_cpu(vb, VerifyResult{a1.data(), n1.data()}, 1);
    verify_cpu(vb, VerifyResult{a4.data(), n4.data()}, 4);
    SSD_CHECK(a1 == a4);
    SSD_CHECK(n1 == n4);
  }
}

SSD_TEST(bad_parameters_throw) {
  Case c;
  c.k = 1;
  c.p.draft_len = 1;
  c.target = cat({logp({0.5, 0.5, 0, 0}), logp({1, 0, 0, 0})});
  c.tokens = {4};
  SSD_CHECK_THROWS(c.run());  // token outside the vocabulary
  c.tokens = {1};
  c.p.target.temperature = -1.0f;
  SSD_CHECK_THROWS(c.run());
  c.p.target.temperature = 1.0f;
  c.p.target.top_p = 0.0f;
  SSD_CHECK_THROWS(c.run());
  c.p.target.top_p = 1.0f;
  c.p.draft.top_k = -2;
  SSD_CHECK_THROWS(c.run());
  c.p.draft.top_k = 0;
  c.p.saguaro_c = 1.5f;
  SSD_CHECK_THROWS(c.run());
  c.p.saguaro_c = 1.0f;
  c.p.draft_len = 2;
  SSD_CHECK_THROWS(c.run());
  c.p.draft_len = 1;
  SSD_CHECK(c.run().first >= 0);
}

int main() { return ssd_test::run_all(); }
