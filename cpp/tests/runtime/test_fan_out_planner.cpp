// test_fan_out_planner.cpp: uniform/list/geometric plans, rounding, and the online estimators of the
// acceptance rate a and the miss-rate exponent r on synthetic data with known parameters.
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "check.h"
#include "fan_out_planner.h"

using ssd::FanOutMode;
using ssd::FanOutPlanner;

static int sum(const std::vector<int>& v) { return std::accumulate(v.begin(), v.end(), 0); }

SSD_TEST(uniform_spreads_evenly_earlier_first) {
  SSD_CHECK(ssd::uniform_fan_out(4, 8) == std::vector<int>({2, 2, 2, 1, 1}));
  SSD_CHECK(ssd::uniform_fan_out(4, 3) == std::vector<int>({1, 1, 1, 0, 0}));
  SSD_CHECK(ssd::uniform_fan_out(4, 10) == std::vector<int>({2, 2, 2, 2, 2}));
  SSD_CHECK(ssd::uniform_fan_out(0, 5) == std::vector<int>({5}));
  for (int K = 1; K <= 32; ++K) {
    for (int F = 1; F <= 256; F += 17) {
      auto p = ssd::uniform_fan_out(K, F);
      SSD_CHECK_EQ(static_cast<int>(p.size()), K + 1);
      SSD_CHECK_EQ(sum(p), F);
      SSD_CHECK(p.front() - p.back() <= 1);
    }
  }
  FanOutPlanner planner(4, 8, FanOutMode::kUniform);
  SSD_CHECK(planner.plan() == std::vector<int>({2, 2, 2, 1, 1}));
}

SSD_TEST(largest_remainder_rounding) {
  SSD_CHECK(ssd::largest_remainder_round({1, 1, 1}, 2) == std::vector<int>({1, 1, 0}));
  SSD_CHECK(ssd::largest_remainder_round({0.5, 0.3, 0.2}, 10) == std::vector<int>({5, 3, 2}));
  SSD_CHECK(ssd::largest_remainder_round({0.46, 0.34, 0.2}, 3) == std::vector<int>({1, 1, 1}));
  SSD_CHECK(ssd::largest_remainder_round({1, 0}, 4) == std::vector<int>({4, 0}));
  SSD_CHECK_THROWS(ssd::largest_remainder_round({0, 0}, 4));
  SSD_CHECK_THROWS(ssd::largest_remainder_round({1, -1}, 4));
  std::mt19937_64 rng(1);
  std::uniform_real_distribution<double> u(0, 1);
  for (int t = 0; t < 200; ++t) {
    std::vector<double> w(1 + t % 33);
    for (double& x : w) x = u(rng) * u(rng);
    const int total = t;
    auto r = ssd::largest_remainder_round(w, total);
    SSD_CHECK_EQ(sum(r), total);
    const double ws = std::accumulate(w.begin(), w.end(), 0.0);
    for (std::size_t i = 0; i < w.size(); ++i) SSD_CHECK(std::fabs(r[i] - total * w[i] / ws) < 1.0);
  }
}

SSD_TEST(geometric_shape) {
  // Low acceptance: most outcomes are early rejections, so early positions get the budget.
  auto low = ssd::geometric_fan_out(4, 16, 0.2, 1.0);
  SSD_CHECK_EQ(sum(low), 16);
  SSD_CHECK(low[0] > low[1]);
  for (int j = 1; j < 4; ++j) SSD_CHECK(low[j - 1] >= low[j]);
  SSD_CHECK(low[0] >= 8);
  // High acceptance: all K accepted is the likeliest outcome, so the bonus position F_K is largest.
  auto high = ssd::geometric_fan_out(4, 16, 0.9, 1.0);
  SSD_CHECK_EQ(sum(high), 16);
  for (int j = 0; j < 4; ++j) SSD_CHECK(high[4] > high[j]);
  // Larger r flattens the plan (exponent 1/(1+r) -> 0), r = 0 follows P(j) exactly.
  auto sharp = ssd::geometric_fan_out(4, 64, 0.3, 0.0);
  auto flat = ssd::geometric_fan_out(4, 64, 0.3, 20.0);
  SSD_CHECK(sharp[0] - sharp[3] > flat[0] - flat[3]);
  SSD_CHECK_EQ(sharp[0], static_cast<int>(std::lround(64 * 0.7)));  // P(0) = 1 - a
  for (int K = 1; K <= 32; K += 5) {
    for (double a : {0.05, 0.5, 0.95}) SSD_CHECK_EQ(sum(ssd::geometric_fan_out(K, 37, a, 1.0)), 37);
  }
  SSD_CHECK_THROWS(ssd::geometric_fan_out(4, 8, 1.0, 1.0));
}

// Draws an accept length from per-token acceptance a with `proposed` proposals.
static int draw_accept(std::mt19937_64& rng, double a, int proposed) {
  std::bernoulli_distribution acc(a);
  int k = 0;
  while (k < proposed && acc(rng)) ++k;
  return k;
}

SSD_TEST(geometric_starts_uniform_then_adapts) {
  ssd::FanOutPlannerOptions opts;
  opts.min_observations = 16;
  FanOutPlanner p(4, 10, FanOutMode::kGeometric, {}, opts);
  std::mt19937_64 rng(7);
  for (int i = 0; i < 15; ++i) p.observe_accept(draw_accept(rng, 0.9, 4), 4);
  SSD_CHECK(p.plan() == ssd::uniform_fan_out(4, 10));
  for (int i = 0; i < 500; ++i) p.observe_accept(draw_accept(rng, 0.9, 4), 4);
  auto plan = p.plan();
  SSD_CHECK_EQ(sum(plan), 10);
  for (int j = 0; j < 4; ++j) SSD_CHECK(plan[4] > plan[j]);
  SSD_CHECK_EQ(p.observations(), 515);
}

SSD_TEST(acceptance_estimate_converges_and_tracks_changes) {
  FanOutPlanner p(4, 8, FanOutMode::kGeometric);  // window 256
  SSD_CHECK_NEAR(p.acceptance_estimate(), 0.5, 1e-12);  // no data yet
  std::mt19937_64 rng(11);
  for (int i = 0; i < 4000; ++i) p.observe_accept(draw_accept(rng, 0.7, 4), 4);
  SSD_CHECK_NEAR(p.acceptance_estimate(), 0.7, 0.05);
  for (int i = 0; i < 4000; ++i) p.observe_accept(draw_accept(rng, 0.3, 4), 4);
  SSD_CHECK_NEAR(p.acceptance_estimate(), 0.3, 0.05);
  // Short proposals (near max_tokens, n-gram backups) are handled without bias.
  FanOutPlanner q(6, 8, FanOutMode::kGeometric);
  for (int i = 0; i < 6000; ++i) {
    const int n = 1 + i % 6;
    q.observe_accept(draw_accept(rng, 0.6, n), n);
  }
  SSD_CHECK_NEAR(q.acceptance_estimate(), 0.6, 0.05);
  q.observe_accept(0, 0);  // no information: ignored
  SSD_CHECK_THROWS(q.observe_accept(3, 2));
}

SSD_TEST(acceptance_estimate_is_clamped) {
  FanOutPlanner p(4, 8, FanOutMode::kGeometric);
  for (int i = 0; i < 100; ++i) p.observe_accept(4, 4);  // never rejected
  SSD_CHECK_NEAR(p.acceptance_estimate(), 0.95, 1e-12);
  FanOutPlanner q(4, 8, FanOutMode::kGeometric);
  for (int i = 0; i < 100; ++i) q.observe_accept(0, 4);
  SSD_CHECK_NEAR(q.acceptance_estimate(), 0.05, 1e-12);
}

// Feeds hits from P(miss | f) = min(1, c * f^-r) for the given f values.
static void feed_power_law(FanOutPlanner& p, std::mt19937_64& rng, const std::vector<int>& fs, double c,
                           double r, int per_f) {
  for (int i = 0; i < per_f; ++i) {
    for (int f : fs) {
      std::bernoulli_distribution miss(std::min(1.0, c * std::pow(f, -r)));
      p.observe_hit(i % 5, f, !miss(rng));
    }
  }
}

SSD_TEST(miss_exponent_fit_recovers_power_law) {
  ssd::FanOutPlannerOptions opts;
  opts.window = 4096;
  std::mt19937_64 rng(3);
  FanOutPlanner p(4, 8, FanOutMode::kGeometric, {}, opts);
  SSD_CHECK_NEAR(p.miss_exponent_estimate(), 1.0, 1e-12);  // default until fitted
  feed_power_law(p, rng, {1, 2, 4, 8, 16}, 0.9, 0.7, 4000);
  SSD_CHECK_NEAR(p.miss_exponent_estimate(), 0.7, 0.1);

  FanOutPlanner q(4, 8, FanOutMode::kGeometric, {}, opts);
  feed_power_law(q, rng, {1, 3, 6}, 0.95, 1.5, 4000);
  SSD_CHECK_NEAR(q.miss_exponent_estimate(), 1.5, 0.2);
}

SSD_TEST(miss_exponent_needs_two_distinct_fan_outs) {
  FanOutPlanner p(4, 8, FanOutMode::kGeometric);
  std::mt19937_64 rng(5);
  feed_power_law(p, rng, {2}, 0.9, 0.7, 500);
  SSD_CHECK_NEAR(p.miss_exponent_estimate(), 1.0, 1e-12);
  p.observe_hit(0, 0, false);  // f = 0 is ignored
  SSD_CHECK_NEAR(p.miss_exponent_estimate(), 1.0, 1e-12);
  SSD_CHECK_THROWS(p.observe_hit(5, 1, true));  // j > K
}

SSD_TEST(list_mode_and_config) {
  FanOutPlanner p(2, 99, FanOutMode::kList, {3, 0, 1});
  SSD_CHECK(p.plan() == std::vector<int>({3, 0, 1}));
  SSD_CHECK_EQ(p.budget(), 4);
  SSD_CHECK_THROWS(FanOutPlanner(2, 8, FanOutMode::kList, {1, 1}));
  SSD_CHECK_THROWS(FanOutPlanner(2, 8, FanOutMode::kList, {0, 0, 0}));
  SSD_CHECK_THROWS(FanOutPlanner(2, 0, FanOutMode::kUniform));

  ssd::EngineConfig c;
  c.K = 3;
  c.fan_out_mode = "list";
  c.fan_out_list = {4, 2, 1, 1};
  FanOutPlanner from_config = ssd::make_fan_out_planner(c);
  SSD_CHECK(from_config.plan() == c.fan_out_list);
  SSD_CHECK(from_config.mode() == FanOutMode::kList);
  SSD_CHECK_EQ(from_config.K(), 3);
}

int main() { return ssd_test::run_all(); }
