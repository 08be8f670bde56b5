// test_public_mirror.cpp: the public API's mirror types (include/ssdcore/) against the runtime's:
// EngineConfig defaults and field order, SamplingParams vs RequestParams defaults, and the sizing
// helpers against the slot layout the draft worker uses.
#include "check.h"
#include "engine_config.h"
#include "sequence.h"
#include "ssdcore/ssdcore.h"

SSD_TEST(engine_config_defaults_mirror_the_runtime) {
  ssdcore::EngineConfig pub;
  ssd::EngineConfig in;
  SSD_CHECK(pub.mode == in.mode);
  SSD_CHECK_EQ(pub.K, in.K);
  SSD_CHECK(pub.fan_out_mode == in.fan_out_mode);
  SSD_CHECK_EQ(pub.fan_out_budget, in.fan_out_budget);
  SSD_CHECK(pub.fan_out_list == in.fan_out_list);
  SSD_CHECK(pub.backup == in.backup);
  SSD_CHECK_EQ(pub.auto_jit_max_batch, in.auto_jit_max_batch);
  SSD_CHECK_EQ(pub.saguaro_c, in.saguaro_c);
  SSD_CHECK_EQ(pub.max_batch, in.max_batch);
  SSD_CHECK_EQ(pub.max_context, in.max_context);
  SSD_CHECK_EQ(pub.ngram_n, in.ngram_n);
  SSD_CHECK_EQ(pub.seed, in.seed);
  SSD_CHECK_EQ(pub.stats_window, in.stats_window);
  SSD_CHECK_EQ(pub.spin_wait_us, in.spin_wait_us);
  SSD_CHECK(ssdcore::EngineConfig::field_names() == ssd::EngineConfig::field_names());
  // A field added to one struct and not the other changes its size.
  SSD_CHECK_EQ(sizeof(ssdcore::EngineConfig), sizeof(ssd::EngineConfig));
}

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
