// test_engine_config.cpp: EngineConfig defaults, validation messages, field list and enum parsing.
#include <functional>
#include <limits>
#include <stdexcept>
#include <string>

#include "check.h"
#include "engine_config.h"

using ssd::EngineConfig;

// Runs validate() on a default config changed by `mutate`; returns the message ("" if it passed).
static std::string validation_error(const std::function<void(EngineConfig&)>& mutate) {
  EngineConfig c;
  mutate(c);
  try {
    c.validate();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

static bool contains(const std::string& hay, const std::string& needle) {
  return hay.find(needle) != std::string::npos;
}

// CHECK_INVALID(field, value, statements...): the mutated config fails naming "EngineConfig.<field> = <value>".
#define CHECK_INVALID(field, value, ...)                                                \
  do {                                                                                  \
    const std::string msg_ = validation_error([](EngineConfig& c) { __VA_ARGS__; });    \
    const std::string want_ = std::string("EngineConfig.") + field + " = " + value;     \
    SSD_CHECK(contains(msg_, want_));                                                   \
    if (!contains(msg_, want_)) std::printf("  want: %s\n  got:  %s\n", want_.c_str(), msg_.c_str()); \
  } while (0)

#define CHECK_VALID(...) SSD_CHECK_EQ(validation_error([](EngineConfig& c) { __VA_ARGS__; }), std::string())

SSD_TEST(defaults_are_valid_and_documented) {
  EngineConfig c;
  c.validate();
  SSD_CHECK_EQ(c.mode, std::string("ssd"));
  SSD_CHECK_EQ(c.K, 4);
  SSD_CHECK_EQ(c.fan_out_mode, std::string("uniform"));
  SSD_CHECK_EQ(c.fan_out_budget, 8);
  SSD_CHECK(c.fan_out_list.empty());
  SSD_CHECK_EQ(c.backup, std::string("auto"));
  SSD_CHECK_EQ(c.auto_jit_max_batch, 8);
  SSD_CHECK_EQ(c.saguaro_c, 1.0);
  SSD_CHECK_EQ(c.max_batch, 8);
  SSD_CHECK_EQ(c.max_context, 1024);
  SSD_CHECK_EQ(c.ngram_n, 3);
  SSD_CHECK_EQ(c.seed, 0u);
  SSD_CHECK_EQ(c.stats_window, 256);
  SSD_CHECK(ssd::mode_of(c) == ssd::Mode::kSsd);
  SSD_CHECK(ssd::fan_out_mode_of(c) == ssd::FanOutMode::kUniform);
  SSD_CHECK(ssd::backup_of(c) == ssd::Backup::kAuto);
}

SSD_TEST(exact_message_format) {
  SSD_CHECK_EQ(validation_error([](EngineConfig& c) { c.K = 0; }),
               std::string("EngineConfig.K = 0 is invalid: allowed 1..32"));
  SSD_CHECK_EQ(validation_error([](EngineConfig& c) { c.mode = "fast"; }),
               std::string("EngineConfig.mode = \"fast\" is invalid: allowed \"ssd\", \"sd\", \"ar\""));
}

SSD_TEST(each_invalid_field_is_named_with_its_value) {
  CHECK_INVALID("mode", "\"SSD\"", c.mode = "SSD");
  CHECK_INVALID("K", "33", c.K = 33);
  CHECK_INVALID("K", "-1", c.K = -1);
  CHECK_INVALID("fan_out_mode", "\"geo\"", c.fan_out_mode = "geo");
  CHECK_INVALID("fan_out_budget", "0", c.fan_out_budget = 0);
  CHECK_INVALID("fan_out_budget", "257", c.fan_out_budget = 257);
  CHECK_INVALID("backup", "\"fast\"", c.backup = "fast");
  CHECK_INVALID("auto_jit_max_batch", "-1", c.auto_jit_max_batch = -1);
  CHECK_INVALID("saguaro_c", "1.5", c.saguaro_c = 1.5);
  CHECK_INVALID("saguaro_c", "-0.25", c.saguaro_c = -0.25);
  CHECK_INVALID("saguaro_c", "nan", c.saguaro_c = std::numeric_limits<double>::quiet_NaN());
  CHECK_INVALID("saguaro_c", "1.0000001", c.saguaro_c = 1.0000001);
  CHECK_INVALID("max_batch", "0", c.max_batch = 0);
  CHECK_INVALID("max_context", "15", c.max_context = 15);
  CHECK_INVALID("ngram_n", "0", c.ngram_n = 0);
  CHECK_INVALID("ngram_n", "9", c.ngram_n = 9);
  CHECK_INVALID("ngram_min_n", "0", c.ngram_min_n = 0);
  CHECK_INVALID("ngram_min_n", "4", c.ngram_min_n = 4);  // above ngram_n = 3
  CHECK_INVALID("stats_window", "0", c.stats_window = 0);
}

SSD_TEST(allowed_range_is_in_the_message) {
  const std::string k = validation_error([](EngineConfig& c) { c.ngram_n = 9; });
  SSD_CHECK(contains(k, "allowed 1..8"));
  const std::string b = validation_error([](EngineConfig& c) { c.backup = "x"; });
  SSD_CHECK(contains(b, "\"auto\", \"jit\", \"ngram\", \"none\""));
  const std::string s = validation_error([](EngineConfig& c) { c.saguaro_c = 2; });
  SSD_CHECK(contains(s, "[0, 1]"));
  const std::string m = validation_error([](EngineConfig& c) { c.max_context = 1; });
  SSD_CHECK(contains(m, "allowed 16..1048576"));
  const std::string batch = validation_error([](EngineConfig& c) { c.max_batch = 4097; });
  SSD_CHECK(contains(batch, "max_batch = 4097 is invalid: allowed 1..4096"));
}

SSD_TEST(boundaries_are_valid) {
  CHECK_VALID(c.K = 1);
  CHECK_VALID(c.K = 32);
  CHECK_VALID(c.fan_out_budget = 1);
  CHECK_VALID(c.fan_out_budget = 256);
  CHECK_VALID(c.saguaro_c = 0.0);
  CHECK_VALID(c.auto_jit_max_batch = 0);
  CHECK_VALID(c.max_context = 16);
  CHECK_VALID(c.max_context = 1 << 20);
  CHECK_VALID(c.max_batch = 4096);
  CHECK_VALID(c.ngram_n = 8);
  CHECK_VALID(c.seed = ~0ull);
  CHECK_VALID(c.mode = "ar");
  CHECK_VALID(c.mode = "sd");
  CHECK_VALID(c.backup = "none");
  CHECK_VALID(c.fan_out_mode = "geometric");
}

SSD_TEST(fan_out_list_rules) {
  CHECK_VALID(c.fan_out_mode = "list"; c.fan_out_list = {3, 2, 1, 0, 2});
  CHECK_VALID(c.fan_out_mode = "list"; c.K = 1; c.fan_out_list = {0, 1});
  CHECK_INVALID("fan_out_list", "[]", c.fan_out_mode = "list");                            // empty
  CHECK_INVALID("fan_out_list", "[1, 1, 1, 1]", c.fan_out_mode = "list"; c.fan_out_list = {1, 1, 1, 1});  // K
  CHECK_INVALID("fan_out_list", "[1, -1, 1, 1, 1]", c.fan_out_mode = "list"; c.fan_out_list = {1, -1, 1, 1, 1});
  CHECK_INVALID("fan_out_list", "[0, 0, 0, 0, 0]", c.fan_out_mode = "list"; c.fan_out_list = {0, 0, 0, 0, 0});
  CHECK_INVALID("fan_out_list", "[200, 57, 0, 0, 0]", c.fan_out_mode = "list"; c.fan_out_list = {200, 57, 0, 0, 0});
  CHECK_INVALID("fan_out_list", "[1, 1, 1, 1, 1]", c.fan_out_list = {1, 1, 1, 1, 1});  // not list mode
  const std::string msg = validation_error([](EngineConfig& c) {
    c.fan_out_mode = "list";
    c.fan_out_list = {1, 2};
  });
  SSD_CHECK(contains(msg, "5 entries (K+1)"));
}

SSD_TEST(field_names_in_declaration_order) {
  const auto names = EngineConfig::field_names();
  const std::vector<std::string> expect = {"mode",        "K",       "fan_out_mode", "fan_out_budget",
                                           "fan_out_list", "backup",  "auto_jit_max_batch",
                                           "saguaro_c",   "max_batch", "max_context", "ngram_n",
                                           "ngram_min_n", "seed",        "stats_window", "spin_wait_us"};
  SSD_CHECK(names == expect);
  // Every field appears in to_string(), in the same order.
  const std::string s = EngineConfig().to_string();
  std::size_t pos = 0;
  for (const auto& n : names) {
    const std::size_t at = s.find(n + "=", pos);
    SSD_CHECK(at != std::string::npos);
    pos = at == std::string::npos ? pos : at;
  }
}

SSD_TEST(enum_parsing_round_trips_and_errors_list_names) {
  for (auto m : {ssd::Mode::kSsd, ssd::Mode::kSd, ssd::Mode::kAr}) {
    SSD_CHECK(ssd::parse_mode(ssd::to_string(m)) == m);
  }
  for (auto m : {ssd::FanOutMode::kUniform, ssd::FanOutMode::kList, ssd::FanOutMode::kGeometric}) {
    SSD_CHECK(ssd::parse_fan_out_mode(ssd::to_string(m)) == m);
  }
  for (auto b : {ssd::Backup::kAuto, ssd::Backup::kJit, ssd::Backup::kNgram, ssd::Backup::kNone}) {
    SSD_CHECK(ssd::parse_backup(ssd::to_string(b)) == b);
  }
  std::string msg;
  try {
    ssd::parse_backup("JIT");
  } catch (const std::invalid_argument& e) {
    msg = e.what();
  }
  SSD_CHECK_EQ(msg, std::string("unknown backup \"JIT\": allowed \"auto\", \"jit\", \"ngram\", \"none\""));
  SSD_CHECK_THROWS(ssd::parse_mode(""));
  SSD_CHECK_THROWS(ssd::parse_fan_out_mode("Uniform"));
}

// The sizing helpers against the slot layout the draft worker uses.
SSD_TEST(draft_sizing_covers_the_tree_scratch) {
  EngineConfig c;
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
