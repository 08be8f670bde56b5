// test_sampling_params.cpp: SamplingParams::validate() (the one set of value rules for a request's
// sampling settings, shared with the verifier's and the draft sampler's checks) and transform_of().
#include <limits>
#include <stdexcept>
#include <string>

#include "check.h"
#include "sampling_params.h"

using ssd::SamplingParams;

static std::string error_of(const SamplingParams& p) {
  try {
    p.validate();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

SSD_TEST(defaults_and_boundaries_are_valid) {
  SamplingParams p;
  SSD_CHECK_EQ(error_of(p), std::string());
  p.temperature = 0.0;
  p.top_k = std::numeric_limits<std::int32_t>::max();
  p.top_p = 1.0;
  p.max_tokens = 1;
  p.stop_token_ids = {0, 7};
  SSD_CHECK_EQ(error_of(p), std::string());
}

SSD_TEST(messages_name_field_value_and_range) {
  SamplingParams p;
  p.top_p = 0.0;
  SSD_CHECK_EQ(error_of(p), std::string("SamplingParams.top_p = 0.0 is invalid: allowed a number in (0, 1] (1 = off)"));
  p = SamplingParams{};
  p.temperature = -0.5;
  SSD_CHECK_EQ(error_of(p),
               std::string("SamplingParams.temperature = -0.5 is invalid: allowed a finite number >= 0 (0 = greedy)"));
  p.temperature = 1e300;  // finite as a double, not as the float the sampling math uses
  SSD_CHECK(error_of(p).find("temperature = 1e+300") != std::string::npos);
  p = SamplingParams{};
  p.top_k = -1;
  SSD_CHECK_EQ(error_of(p), std::string("SamplingParams.top_k = -1 is invalid: allowed an integer in [0, 2147483647] (0 = off)"));
  p = SamplingParams{};
  p.max_tokens = 0;
  SSD_CHECK_EQ(error_of(p), std::string("SamplingParams.max_tokens = 0 is invalid: allowed an integer in [1, 2147483647]"));
  p = SamplingParams{};
  p.stop_token_ids = {3, -1};
  SSD_CHECK_EQ(error_of(p), std::string("SamplingParams.stop_token_ids = [3, -1] is invalid: allowed token ids in [0, 2147483647]"));
}

SSD_TEST(transform_is_temperature_top_k_top_p) {
  SamplingParams p;
  p.temperature = 0.7;
  p.top_k = 40;
  p.top_p = 0.9;
  const ssd::SamplingTransform t = ssd::transform_of(p);
  SSD_CHECK_EQ(t.temperature, 0.7f);
  SSD_CHECK_EQ(t.top_k, 40);
  SSD_CHECK_EQ(t.top_p, 0.9f);
  SSD_CHECK(ssd::needs_q(p));
  p.temperature = 0.0;
  SSD_CHECK(!ssd::needs_q(p));
}

int main() { return ssd_test::run_all(); }
