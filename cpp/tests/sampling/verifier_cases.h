// verifier_cases.h: the hand-worked verification fixtures shared by test_verifier.cpp and
// test_verifier_batch.cpp: one-sequence cases on a 4-token vocabulary, log-probability rows, row
// concatenation and the transformed probabilities of a row.
#pragma once
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

namespace verifier_cases {

inline constexpr float kNegInf = -INFINITY;

inline std::pair<int64_t, int64_t> res(int64_t accept_len, int64_t next_token) { return {accept_len, next_token}; }

// Pointers to the rows of a dense [n, V] buffer (VerifyBatch::draft_rows); empty when dense is.
inline std::vector<const float*> row_ptrs(const std::vector<float>& dense, int64_t V) {
  std::vector<const float*> rows;
  for (size_t r = 0; r * V < dense.size(); ++r) rows.push_back(dense.data() + r * V);
  return rows;
}

// One sequence on V = 4: target rows (k+1)*4, draft rows k*4 (empty: one-hot proposals).
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

inline std::vector<float> logp(std::vector<double> probs) {
  std::vector<float> out;
  for (double x : probs) out.push_back(x > 0 ? static_cast<float>(std::log(x)) : kNegInf);
  return out;
}

inline std::vector<float> cat(std::initializer_list<std::vector<float>> rows) {
  std::vector<float> out;
  for (const auto& r : rows) out.insert(out.end(), r.begin(), r.end());
  return out;
}

inline std::vector<double> probs_of(const std::vector<float>& row, SamplingTransform sp, SaguaroParams sg = {}) {
  RowScratch sc;
  const RowStats s = compute_row_stats(row.data(), 4, sp, sg, sc, nullptr);
  std::vector<double> out;
  for (int t = 0; t < 4; ++t) out.push_back(token_prob(s, row[t], t));
  return out;
}

}  // namespace verifier_cases

using namespace verifier_cases;
