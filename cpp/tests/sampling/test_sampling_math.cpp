// test_sampling_math.cpp: the shared math of sampling_math.h and the row transforms of distribution.h.
#include <cmath>
#include <cstdint>
#include <vector>

#include "check.h"
#include "distribution.h"
#include "sampling_math.h"

using namespace ssd;

SSD_TEST(philox_known_answers) {
  // Random123's published known-answer vectors for Philox4x32-10.
  Philox4 a = philox4x32_10(0, 0, 0, 0, 0, 0);
  SSD_CHECK_EQ(a.v[0], 0x6627e8d5u);
  SSD_CHECK_EQ(a.v[1], 0xe169c58du);
  SSD_CHECK_EQ(a.v[2], 0xbc57ac4cu);
  SSD_CHECK_EQ(a.v[3], 0x9b00dbd8u);
  Philox4 b = philox4x32_10(0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu);
  SSD_CHECK_EQ(b.v[0], 0x408f276du);
  SSD_CHECK_EQ(b.v[1], 0x41c83b0eu);
  SSD_CHECK_EQ(b.v[2], 0xa20bc7c6u);
  SSD_CHECK_EQ(b.v[3], 0x6d5451fdu);
  Philox4 c = philox4x32_10(0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u, 0xa4093822u, 0x299f31d0u);
  SSD_CHECK_EQ(c.v[0], 0xd16cfe09u);
  SSD_CHECK_EQ(c.v[1], 0x94fdccebu);
  SSD_CHECK_EQ(c.v[2], 0x5001e420u);
  SSD_CHECK_EQ(c.v[3], 0x24126ea1u);
}

SSD_TEST(uniform_is_keyed_deterministic_and_uniform) {
  SSD_CHECK_EQ(uniform01(7, 100, kPurposeAccept, 0), uniform01(7, 100, kPurposeAccept, 0));
  SSD_CHECK(uniform01(7, 100, kPurposeAccept, 0) != uniform01(7, 100, kPurposeResidual, 0));
  SSD_CHECK(uniform01(7, 100, kPurposeAccept, 0) != uniform01(7, 101, kPurposeAccept, 0));
  SSD_CHECK(uniform01(7, 100, kPurposeAccept, 0) != uniform01(8, 100, kPurposeAccept, 0));
  SSD_CHECK(uniform01(1ull << 40, 100, kPurposeAccept, 0) != uniform01(0, 100, kPurposeAccept, 0));
  SSD_CHECK(uniform01(7, int64_t(1) << 40, kPurposeAccept, 0) != uniform01(7, 0, kPurposeAccept, 0));
  const int n = 200000;
  double sum = 0.0, sum2 = 0.0;
  int bins[10] = {0};
  for (int i = 0; i < n; ++i) {
    const double u = uniform01(12345, i, kPurposeDraft, 0);
    SSD_CHECK(u >= 0.0 && u < 1.0);
    sum += u;
    sum2 += u * u;
    bins[static_cast<int>(u * 10)]++;
  }
  SSD_CHECK_NEAR(sum / n, 0.5, 0.005);
  SSD_CHECK_NEAR(sum2 / n - (sum / n) * (sum / n), 1.0 / 12.0, 0.003);
  for (int b = 0; b < 10; ++b) SSD_CHECK_NEAR(bins[b], n / 10.0, 600.0);  // ~4.5 sigma
}

SSD_TEST(exp_accuracy_range_and_monotonicity) {
  double worst = 0.0;
  float prev = 0.0f;
  bool monotone = true;
  for (float x = -86.0f; x <= 88.0f; x += 0.0009765625f) {
    const float y = ssd_exp(x);
    const double ref = std::exp(static_cast<double>(x));
    worst = std::fmax(worst, std::fabs(y - ref) / ref);
    if (y < prev) monotone = false;
    prev = y;
  }
  SSD_CHECK(worst < 4e-7);
  SSD_CHECK(monotone);
  SSD_CHECK_EQ(ssd_exp(0.0f), 1.0f);
  SSD_CHECK_EQ(ssd_exp(-86.5f), 0.0f);
  SSD_CHECK_EQ(ssd_exp(-INFINITY), 0.0f);
  SSD_CHECK(std::isfinite(ssd_exp(1000.0f)));
  for (float x = -86.0f; x <= 0.0f; x += 0.37f) SSD_CHECK(std::isnormal(ssd_exp(x)));
}

SSD_TEST(log_accuracy_and_special_values) {
  double worst = 0.0;
  for (float x = 1e-30f; x < 1e30f; x *= 1.0137f) {
    const double ref = std::log(static_cast<double>(x));
    worst = std::fmax(worst, std::fabs(ssd_log(x) - ref) / std::fmax(std::fabs(ref), 1.0));
  }
  for (float x = 0.5f; x < 2.0f; x += 1e-4f) {  // near 1, where relative error is hardest
    const double ref = std::log(static_cast<double>(x));
    worst = std::fmax(worst, std::fabs(ssd_log(x) - ref) / std::fmax(std::fabs(ref), 1e-3));
  }
  SSD_CHECK(worst < 2e-6);
  SSD_CHECK_EQ(ssd_log(1.0f), 0.0f);
  SSD_CHECK(std::isinf(ssd_log(0.0f)) && ssd_log(0.0f) < 0);
  SSD_CHECK(std::isnan(ssd_log(-1.0f)));
  SSD_CHECK(std::isinf(ssd_log(INFINITY)));
  SSD_CHECK_NEAR(ssd_log(1e-40f), std::log(1e-40), 1e-5);  // denormal input
  SSD_CHECK_NEAR(ssd_log(ssd_exp(-3.25f)), -3.25, 1e-6);
}

SSD_TEST(token_order_keys) {
  SSD_CHECK(token_key(1.0f, 5) > token_key(0.5f, 0));
  SSD_CHECK(token_key(1.0f, 2) > token_key(1.0f, 3));  // ties: lower index first
  SSD_CHECK(token_key(-1.0f, 0) > token_key(-2.0f, 0));
  SSD_CHECK(token_key(-INFINITY, 0) < token_key(-1e30f, 9));
  SSD_CHECK_EQ(token_key(-0.0f, 4), token_key(0.0f, 4));
  for (float l : {-3.5f, -0.0f, 0.0f, 1e-30f, 7.25f, -INFINITY}) {
    const uint64_t k = token_key(l, 77);
    SSD_CHECK(key_logit(k) == l);
    SSD_CHECK_EQ(key_index(k), 77);
  }
  SSD_CHECK(ranks_at_or_above(2.0f, 9, 1.0f, 0));
  SSD_CHECK(ranks_at_or_above(1.0f, 0, 1.0f, 0));
  SSD_CHECK(!ranks_at_or_above(1.0f, 1, 1.0f, 0));
  SSD_CHECK(ranks_at_or_above(-INFINITY, 3, neg_inf_f(), kMaxIndex));
}

SSD_TEST(canonical_sums_follow_the_lane_order) {
  // V = 600: lane i holds tokens i, i+256, i+512 (when < 600), added in that order.
  std::vector<double> w(600);
  for (int t = 0; t < 600; ++t) w[t] = 1.0 / (t + 1.0);
  double lanes[kLanes];
  canonical_lane_sums(600, [&](int32_t t) { return w[t]; }, lanes);
  SSD_CHECK_EQ(lanes[3], (0.0 + w[3]) + w[259] + w[515]);
  SSD_CHECK_EQ(lanes[100], (0.0 + w[100]) + w[356]);
  double expect[kLanes];
  for (int i = 0; i < kLanes; ++i) expect[i] = lanes[i];
  for (int s = 128; s > 0; s /= 2)
    for (int i = 0; i < s; ++i) expect[i] = expect[i] + expect[i + s];
  SSD_CHECK_EQ(lane_tree_sum(lanes), expect[0]);
  // Fewer tokens than lanes: the rest stay zero.
  canonical_lane_sums(3, [&](int32_t t) { return w[t]; }, lanes);
  SSD_CHECK_EQ(lanes[2], w[2]);
  SSD_CHECK_EQ(lanes[3], 0.0);
}

SSD_TEST(inverse_cdf_over_lanes) {
  // Weights on tokens 1 and 3 only (lanes 1 and 3): 1 and 3. u < 1/4 -> token 1, else token 3.
  std::vector<double> w = {0.0, 1.0, 0.0, 3.0};
  double lanes[kLanes];
  canonical_lane_sums(4, [&](int32_t t) { return w[t]; }, lanes);
  const auto pick = [&](double u) { return sample_by_lanes(lanes, 4, u, [&](int32_t t) { return w[t]; }); };
  SSD_CHECK_EQ(pick(0.0), 1);
  SSD_CHECK_EQ(pick(0.2499), 1);
  SSD_CHECK_EQ(pick(0.25), 3);
  SSD_CHECK_EQ(pick(0.9999999), 3);
  std::vector<double> zero(4, 0.0);
  canonical_lane_sums(4, [&](int32_t t) { return zero[t]; }, lanes);
  SSD_CHECK_EQ(sample_by_lanes(lanes, 4, 0.5, [&](int32_t t) { return zero[t]; }), -1);
}

SSD_TEST(topp_fixed_point) {
  SSD_CHECK_EQ(topp_target(1.0f), static_cast<uint64_t>(1) << 52);
  SSD_CHECK_EQ(topp_target(0.5f), static_cast<uint64_t>(1) << 51);
  SSD_CHECK_EQ(topp_mass(0.25f, kMassOne), static_cast<uint64_t>(1) << 50);
}

SSD_TEST(accept_and_residual_primitives) {
  SSD_CHECK(accept_proposal(0.999999, 0.5, 0.5));  // p == q: always accepted
  SSD_CHECK(!accept_proposal(0.0, 0.0, 0.3));      // p(s) == 0: never accepted
  SSD_CHECK(accept_proposal(0.59, 0.3, 0.5));      // ratio 0.6
  SSD_CHECK(!accept_proposal(0.61, 0.3, 0.5));
  SSD_CHECK_EQ(residual_weight(0.2, 0.5), 0.0);
  SSD_CHECK_NEAR(residual_weight(0.5, 0.2), 0.3, 1e-15);
}

int main() { return ssd_test::run_all(); }
