// fan_out_planner.cpp: see fan_out_planner.h.
#include "fan_out_planner.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <string>

namespace ssd {
namespace {

constexpr double kMinA = 0.05, kMaxA = 0.95;
constexpr double kMinR = 0.05, kMaxR = 10.0;

std::vector<int> checked_list(int K, FanOutMode mode, std::vector<int> list) {
  if (mode != FanOutMode::kList) return {};
  long long sum = 0;
  bool ok = list.size() == static_cast<std::size_t>(K) + 1;
  for (int f : list) {
    ok = ok && f >= 0;
    sum += f;
  }
  if (!ok || sum < 1) {
    throw std::invalid_argument("FanOutPlanner: list mode needs K+1 = " + std::to_string(K + 1) +
                                " entries >= 0 with sum >= 1 (got " + std::to_string(list.size()) +
                                " entries, sum " + std::to_string(sum) + ")");
  }
  return list;
}

FanOutPlannerOptions options_from(const EngineConfig& c) {
  FanOutPlannerOptions o;
  o.window = c.stats_window;
  return o;
}

}  // namespace

std::vector<int> uniform_fan_out(int K, int F) {
  if (K < 0 || F < 0) throw std::invalid_argument("uniform_fan_out: needs K >= 0 and F >= 0");
  const int n = K + 1;
  std::vector<int> out(n, F / n);
  for (int j = 0; j < F % n; ++j) out[j] += 1;
  return out;
}

std::vector<int> largest_remainder_round(const std::vector<double>& weights, int total) {
  double sum = 0;
  for (double w : weights) {
    if (!(w >= 0) || !std::isfinite(w)) throw std::invalid_argument("largest_remainder_round: bad weight");
    sum += w;
  }
  if (weights.empty() || !(sum > 0) || total < 0) {
    throw std::invalid_argument("largest_remainder_round: needs weights with a positive sum and total >= 0");
  }
  const std::size_t n = weights.size();
  std::vector<int> out(n);
  std::vector<double> frac(n);
  int assigned = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const double quota = total * (weights[i] / sum);
    out[i] = static_cast<int>(std::floor(quota));
    frac[i] = quota - out[i];
    assigned += out[i];
  }
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](std::size_t x, std::size_t y) { return frac[x] > frac[y]; });
  // Floating-point quotas could overshoot by a unit in pathological cases: take it from the largest.
  while (assigned > total) {
    out[static_cast<std::size_t>(std::max_element(out.begin(), out.end()) - out.begin())] -= 1;
    assigned -= 1;
  }
  for (std::size_t i = 0; assigned < total; ++i, ++assigned) out[order[i % n]] += 1;
  return out;
}

std::vector<int> geometric_fan_out(int K, int F, double a, double r) {
  if (K < 0 || F < 0 || !(a > 0 && a < 1) || !(r >= 0)) {
    throw std::invalid_argument("geometric_fan_out: needs K >= 0, F >= 0, 0 < a < 1, r >= 0");
  }
  const double e = 1.0 / (1.0 + r);
  std::vector<double> w(K + 1);
  for (int j = 0; j < K; ++j) w[j] = std::exp(e * (j * std::log(a) + std::log1p(-a)));
  w[K] = std::exp(e * K * std::log(a));
  return largest_remainder_round(w, F);
}

FanOutPlanner::FanOutPlanner(int K, int budget, FanOutMode mode, std::vector<int> list,
                             FanOutPlannerOptions opts)
    : K_(K), budget_(budget), mode_(mode), list_(checked_list(K, mode, std::move(list))), opts_(opts) {
  if (K < 0) throw std::invalid_argument("FanOutPlanner: K = " + std::to_string(K) + " is invalid: allowed >= 0");
  if (mode != FanOutMode::kList && budget < 1) {
    throw std::invalid_argument("FanOutPlanner: budget = " + std::to_string(budget) + " is invalid: allowed >= 1");
  }
  if (opts.window < 1 || opts.min_observations < 0 || opts.min_hit_samples < 1 || !(opts.default_r >= 0)) {
    throw std::invalid_argument("FanOutPlanner: bad options (window >= 1, min_observations >= 0, "
                                "min_hit_samples >= 1, default_r >= 0)");
  }
}

FanOutPlanner::FanOutPlanner(const EngineConfig& c)
    : FanOutPlanner(c.K, c.fan_out_budget, fan_out_mode_of(c), c.fan_out_list, options_from(c)) {}

FanOutPlanner make_fan_out_planner(const EngineConfig& config) { return FanOutPlanner(config); }

int FanOutPlanner::budget() const {
  if (mode_ == FanOutMode::kList) return std::accumulate(list_.begin(), list_.end(), 0);
  return budget_;
}

std::vector<int> FanOutPlanner::plan() const {
  switch (mode_) {
    case FanOutMode::kList: return list_;
    case FanOutMode::kUniform: return uniform_fan_out(K_, budget_);
    case FanOutMode::kGeometric: break;
  }
  if (observations_ < opts_.min_observations) return uniform_fan_out(K_, budget_);
  return geometric_fan_out(K_, budget_, acceptance_estimate(), miss_exponent_estimate());
}

void FanOutPlanner::observe_accept(int accepted, int proposed) {
  if (accepted < 0 || accepted > proposed) {
    throw std::invalid_argument("FanOutPlanner::observe_accept: needs 0 <= accepted <= proposed (got " +
                                std::to_string(accepted) + " of " + std::to_string(proposed) + ")");
  }
  if (proposed == 0) return;
  const double keep = 1.0 - 1.0 / opts_.window;
  accept_successes_ = keep * accept_successes_ + accepted;
  accept_trials_ = keep * accept_trials_ + accepted + (accepted < proposed ? 1 : 0);
  observations_ += 1;
}

void FanOutPlanner::observe_hit(int j, int f, bool hit) {
  if (j < 0 || j > K_ || f < 0) {
    throw std::invalid_argument("FanOutPlanner::observe_hit: needs 0 <= j <= K and f >= 0 (got j=" +
                                std::to_string(j) + ", f=" + std::to_string(f) + ")");
  }
  if (f == 0) return;
  HitBucket& b = hits_by_f_[f];
  b.n += 1;
  b.misses += hit ? 0 : 1;
  hit_total_ += 1;
  if (hit_total_ > 4.0 * opts_.window) {  // windowed: halve the history
    for (auto& kv : hits_by_f_) {
      kv.second.n *= 0.5;
      kv.second.misses *= 0.5;
    }
    hit_total_ *= 0.5;
  }
}

double FanOutPlanner::acceptance_estimate() const {
  if (!(accept_trials_ > 0)) return 0.5;
  return std::clamp(accept_successes_ / accept_trials_, kMinA, kMaxA);
}

// Weighted least squares of y = log P(miss | f) on x = log f, weights = sample counts.
double FanOutPlanner::miss_exponent_estimate() const {
  double sw = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
  int points = 0;
  for (const auto& kv : hits_by_f_) {
    const HitBucket& b = kv.second;
    if (b.n < opts_.min_hit_samples) continue;
    const double x = std::log(static_cast<double>(kv.first));
    const double y = std::log((b.misses + 0.5) / (b.n + 1.0));
    sw += b.n;
    sx += b.n * x;
    sy += b.n * y;
    sxx += b.n * x * x;
    sxy += b.n * x * y;
    ++points;
  }
  if (points < 2) return opts_.default_r;
  const double var = sxx - sx * sx / sw;
  if (!(var > 1e-12)) return opts_.default_r;
  const double slope = (sxy - sx * sy / sw) / var;
  return std::clamp(-slope, kMinR, kMaxR);
}

}  // namespace ssd
