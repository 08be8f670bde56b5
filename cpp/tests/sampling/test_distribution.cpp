// test_distribution.cpp: the kept set of top-k / top-p (distribution.h's one-pass row statistics) equals
// the set the definitions give by brute force (sort, count, cumulate), on long tails, heavy ties and
// wide rows.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

#include "check.h"
#include "distribution.h"

using namespace ssd;

namespace {

// The kept set by the definitions in distribution.h, by brute force: sort everything, count, cumulate.
std::vector<char> kept_by_definition(const std::vector<float>& l, const SamplingTransform& sp) {
  const int v = static_cast<int>(l.size());
  std::vector<int> order(v);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int a, int b) { return token_key(l[a], a) > token_key(l[b], b); });
  const float lmax = l[order[0]], inv_t = 1.0f / sp.temperature;
  std::vector<char> keep(v, 0);
  const int k = sp.top_k > 0 && sp.top_k < v ? sp.top_k : v;
  for (int j = 0; j < k; ++j) keep[order[j]] = 1;
  if (sp.top_p < 1.0f) {
    double lanes[kLanes];
    canonical_lane_sums(v, [&](int32_t t) { return keep[t] ? static_cast<double>(base_weight(l[t], lmax, inv_t)) : 0.0; },
                        lanes);
    const double scale = kMassOne / lane_tree_sum(lanes);
    const uint64_t need = topp_target(sp.top_p);
    uint64_t cum = 0;
    int n = k;
    for (int j = 0; j < k; ++j) {
      cum += topp_mass(base_weight(l[order[j]], lmax, inv_t), scale);
      if (cum >= need) {
        n = j + 1;
        break;
      }
    }
    for (int j = n; j < k; ++j) keep[order[j]] = 0;
  }
  return keep;
}

std::vector<char> kept_by_stats(const std::vector<float>& l, const SamplingTransform& sp) {
  RowScratch sc;
  const RowStats s = compute_row_stats(l.data(), static_cast<int32_t>(l.size()), sp, SaguaroParams{}, sc, nullptr);
  std::vector<char> keep(l.size());
  for (size_t t = 0; t < l.size(); ++t) keep[t] = ranks_at_or_above(l[t], static_cast<int32_t>(t), s.keep_l, s.keep_i);
  return keep;
}

}  // namespace

SSD_TEST(top_k_and_top_p_selections_match_brute_force) {
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  // A long tail: the cut falls among tokens far below the maximum (the top-p tail bucket).
  std::vector<float> tail(100000, 0.0f);
  tail[7] = 20.0f;
  tail[99] = 19.0f;
  // Heavy ties: thousands of equal logits in one bucket (the weighted quickselect path).
  std::vector<float> ties(5000);
  for (float& x : ties) x = std::round(normal(rng) / 3.0f * 2.0f) / 2.0f;
  std::vector<float> wide(50000);
  for (float& x : wide) x = normal(rng);
  struct Case {
    const std::vector<float>* row;
    SamplingTransform sp;
  };
  const Case cases[] = {
      {&tail, {1.0f, 0, 0.99999f}}, {&tail, {1.0f, 0, 0.9999999f}}, {&tail, {0.5f, 0, 0.999f}},
      {&ties, {1.0f, 0, 0.3f}},     {&ties, {1.0f, 0, 0.5f}},       {&ties, {1.0f, 0, 0.9f}},
      {&ties, {1.0f, 3000, 1.0f}},  {&ties, {1.0f, 2500, 0.7f}},    {&wide, {1.0f, 0, 0.5f}},
      {&wide, {1.0f, 0, 0.95f}},    {&wide, {0.7f, 1000, 0.95f}},   {&wide, {1.3f, 3000, 0.8f}},
      {&wide, {1.0f, 20000, 1.0f}}, {&wide, {1.0f, 5, 0.99f}},
  };
  for (const Case& c : cases) SSD_CHECK(kept_by_stats(*c.row, c.sp) == kept_by_definition(*c.row, c.sp));
}

int main() { return ssd_test::run_all(); }
