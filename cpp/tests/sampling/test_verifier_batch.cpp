// test_verifier_batch.cpp: verification over batches (results independent of batch composition
// and of threading), the draft sampler against q', and parameter checks (fixtures: verifier_cases.h).
#include "verifier_cases.h"

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
