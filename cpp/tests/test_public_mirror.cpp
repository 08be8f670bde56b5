// test_public_mirror.cpp: the public API's mirror types (include/ssdcore/) against the runtime's:
// SamplingParams vs RequestParams defaults, and the sizing helpers against the slot layout the draft
// worker uses.
#include "check.h"
#include "sequence.h"
#include "ssdcore/ssdcore.h"

SSD_TEST(sampling_params_defaults_mirror_request_params) {
  ssdcore::SamplingParams pub;
  ssd::RequestParams in;
  SSD_CHECK_EQ(pub.temperature, in.temperature);
  SSD_CHECK_EQ(pub.top_k, in.top_k);
  SSD_CHECK_EQ(pub.top_p, in.top_p);
  SSD_CHECK_EQ(pub.seed, in.seed);
  SSD_CHECK_EQ(pub.max_tokens, in.max_tokens);
  SSD_CHECK_EQ(pub.ignore_eos, in.ignore_eos);
  SSD_CHECK(pub.stop_token_ids == in.stop_token_ids);
  SSD_CHECK_EQ(sizeof(ssdcore::SamplingParams), sizeof(ssd::RequestParams));
}

SSD_TEST(draft_sizing_covers_the_tree_scratch) {
  ssdcore::EngineConfig c;
  c.K = 5;
  c.fan_out_budget = 3;
  SSD_CHECK_EQ(c.scratch_slots(), 15);
  c.fan_out_mode = "list";
  c.fan_out_list = {2, 2, 1, 1, 1, 2};  // 9 branches
  SSD_CHECK_EQ(c.scratch_slots(), 45);
  SSD_CHECK_EQ(c.draft_slots(), c.max_context + 45);
  c.mode = "ar";
  SSD_CHECK_EQ(c.draft_slots(), c.max_context);
}

int main() { return ssd_test::run_all(); }
