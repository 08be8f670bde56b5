// fan_out_planner.h: FanOutPlanner, how many outcomes to pre-speculate at each position.
//
// Concept (SSD_SPEC section 3): each round the draft prepares F_j candidate tokens for outcome
// position j = 0..K (j = drafted tokens accepted; the candidates are guesses of the recovery/bonus
// token). plan() returns {F_0, .., F_K}:
//   - uniform:   F spread as evenly as possible, earlier positions get the remainder;
//   - list:      the user's explicit list, as given;
//   - geometric: F_j proportional to P(j)^(1/(1+r)), P(j) = a^j (1-a) for j < K and a^K for j = K,
//                rounded to integers >= 0 summing to F (largest remainder). a (per-token acceptance)
//                and r (power-law exponent of the miss rate, P(miss | f) ~ f^-r) are estimated online
//                from observe_accept / observe_hit; the plan stays uniform until min_observations
//                accept observations have been seen.
//
// Estimators:
//   a: exponentially weighted successes / trials over accept observations (each observation of
//      `accepted` of `proposed` is `accepted` successes in accepted + (accepted < proposed) trials),
//      forgetting factor 1 - 1/window per observation, clamped to [0.05, 0.95]; 0.5 before any data.
//   r: hit/miss counts per distinct fan-out f >= 1, pooled over positions j (halved whenever their
//      total exceeds 4 * window, a windowed approximation); a weighted least-squares fit of
//      log P(miss | f) against log f over the f with >= min_hit_samples samples; r = -slope clamped
//      to [0.05, 10]. Needs at least two distinct such f, else r = default_r (1). Miss rates use
//      +0.5/+1 smoothing so 0 hits/misses stay finite. (A uniform plan with F % (K+1) != 0, or the
//      geometric plan itself, provides the distinct f values.)
//   "window" counts observations (sequence-rounds), not batched rounds.
//
// Invariants: plan().size() == K+1, every entry >= 0; sum == budget in uniform/geometric mode, the
// list's sum in list mode.
//
// Threads: not synchronized. The draft worker owns its planner and is its only caller: it observes
// the outcomes the target reports and plans on the same thread.
#pragma once
#include <cstdint>
#include <map>
#include <vector>

#include "engine_config.h"

namespace ssd {

struct FanOutPlannerOptions {
  int window = 256;            // estimator memory, in observations
  int min_observations = 16;   // accept observations before geometric leaves uniform
  int min_hit_samples = 8;     // samples at one f before it enters the r fit
  double default_r = 1.0;      // r until it can be fitted
};

// Pure helpers (no state; exposed for tests and for other planners).
// F spread over K+1 positions, earlier positions get the remainder.
std::vector<int> uniform_fan_out(int K, int F);
// Capped geometric fan-out for acceptance a in (0, 1) and exponent r >= 0 (SSD_SPEC section 3).
std::vector<int> geometric_fan_out(int K, int F, double a, double r);
// Integers >= 0 proportional to weights (>= 0, not all 0) summing to total (largest remainder;
// ties go to the lower index).
std::vector<int> largest_remainder_round(const std::vector<double>& weights, int total);

class FanOutPlanner {
 public:
  // K >= 0; budget >= 1 (ignored in list mode); list: K+1 entries >= 0 with sum >= 1 in list mode,
  // ignored otherwise. Throws std::invalid_argument on bad arguments.
  FanOutPlanner(int K, int budget, FanOutMode mode, std::vector<int> list = {},
                FanOutPlannerOptions opts = {});
  // From a validated config: K, fan_out_budget, fan_out_mode, fan_out_list, window = stats_window.
  explicit FanOutPlanner(const EngineConfig& config);
  FanOutPlanner(const FanOutPlanner&) = delete;
  FanOutPlanner& operator=(const FanOutPlanner&) = delete;

  std::vector<int> plan() const;

  // One sequence-round's verification: accepted of proposed drafted tokens (0 <= accepted <= proposed).
  // proposed == 0 carries no information and is ignored.
  void observe_accept(int accepted, int proposed);
  // One cache lookup: the real outcome position j had fan-out f prepared, and it hit or missed.
  // f == 0 is ignored (a miss is certain).
  void observe_hit(int j, int f, bool hit);

  double acceptance_estimate() const;     // a, clamped to [0.05, 0.95]
  double miss_exponent_estimate() const;  // r
  std::int64_t observations() const { return observations_; }  // observe_accept calls with proposed > 0

  int K() const { return K_; }
  FanOutMode mode() const { return mode_; }
  int budget() const;                     // F (uniform/geometric) or the list's sum (list)

 private:
  struct HitBucket {
    double n = 0;
    double misses = 0;
  };

  const int K_;
  const int budget_;
  const FanOutMode mode_;
  const std::vector<int> list_;
  const FanOutPlannerOptions opts_;

  double accept_successes_ = 0;  // exponentially weighted
  double accept_trials_ = 0;
  std::int64_t observations_ = 0;
  std::map<int, HitBucket> hits_by_f_;  // f -> (decayed) counts
  double hit_total_ = 0;
};

// The planner for a validated config (returned as a prvalue: FanOutPlanner is not movable, but C++17
// guaranteed elision lets a member be initialized from this call).
FanOutPlanner make_fan_out_planner(const EngineConfig& config);

}  // namespace ssd
