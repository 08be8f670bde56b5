// ssdcore/config.h: ssdcore::EngineConfig, every knob of the engine in one plain struct.
//
// The one configuration type: the runtime, the public C++ API and the Python binding all use this
// struct (the runtime names it ssd::EngineConfig). The Python frozen dataclass ssdcore.EngineConfig
// mirrors it field for field (same names, order and defaults; a test keeps the two in sync).
// for_each_field() lists the fields once, in declaration order: field_names(), to_string() and the
// Python binding are derived from it, so a new setting is declared here, listed there, checked in
// validate() and mirrored by the Python dataclass, and nothing else changes. Enumerations are plain
// strings.
//
// Nothing is checked on assignment: validate() (called by the Engine constructor) throws
// std::invalid_argument naming the first bad field, the value and what is allowed, e.g.
// "EngineConfig.K = 0 is invalid: allowed 1..32".
//
// Sizing the model runners: the engine uses KV lanes 0 .. max_batch-1 on both models. On the target
// a lane needs target_slots() slots (= max_context); on the draft, draft_slots() (= max_context plus
// the scratch slots that hold SSD tree branches, see ssdcore/model_runner.h).
//
// Threads: a plain value type; concurrent const use is safe.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace ssdcore {

struct EngineConfig {
  static constexpr int kMaxK = 32;          // largest K
  static constexpr int kMaxFanOut = 256;    // largest fan-out budget (or fan_out_list sum)
  static constexpr int kMinContext = 16;    // smallest max_context
  static constexpr int kMaxNgramN = 8;      // largest ngram_n
  static constexpr int kMaxSpinWaitUs = 1000000;  // largest spin_wait_us (one second)
  // Hard caps that refuse absurd values before any memory is touched; what fits a machine is
  // checked against its memory where the KV caches are sized (the Python layer, before allocation).
  static constexpr int kMaxBatch = 4096;    // largest max_batch
  static constexpr int kMaxContext = 1 << 20;  // largest max_context

  std::string mode = "ssd";              // "ssd" (speculative speculative), "sd" (speculative), "ar"
  int K = 4;                             // draft length (tokens proposed per round), 1..32
  std::string fan_out_mode = "uniform";  // "uniform" | "list" | "geometric" (SSD only)
  int fan_out_budget = 8;                // F: outcomes pre-speculated per sequence per round, 1..256
  std::vector<int> fan_out_list;         // "list" mode only: K+1 entries >= 0, sum 1..256; else empty
  std::string backup = "auto";           // on a cache miss: "auto" | "jit" | "ngram" | "none"
  int auto_jit_max_batch = 8;            // auto's prior: jit when batch <= this, else ngram; >= 0
  double saguaro_c = 1.0;                // Saguaro down-weighting C in [0, 1]; 1 = plain sampling
  int max_batch = 8;                     // sequences per round (= KV lanes), 1..4096
  int max_context = 1024;                // tokens per sequence (prompt + generated), 16..2^20
  int ngram_n = 3;                       // longest match the ngram proposer tries, 1..8
  int ngram_min_n = 1;                   // shortest match it accepts, 1..ngram_n
  std::uint64_t seed = 0;                // engine default seed (requests may override)
  int stats_window = 256;                // rounds of history for the online estimates, >= 1
  int spin_wait_us = 0;                  // a worker polls this long for the other before parking,
                                         // 0..1000000; > 0 only when each worker has its own cores

  // Calls f(name, &EngineConfig::field) for every field above, in declaration order.
  template <class F>
  static void for_each_field(F&& f) {
    f("mode", &EngineConfig::mode);
    f("K", &EngineConfig::K);
    f("fan_out_mode", &EngineConfig::fan_out_mode);
    f("fan_out_budget", &EngineConfig::fan_out_budget);
    f("fan_out_list", &EngineConfig::fan_out_list);
    f("backup", &EngineConfig::backup);
    f("auto_jit_max_batch", &EngineConfig::auto_jit_max_batch);
    f("saguaro_c", &EngineConfig::saguaro_c);
    f("max_batch", &EngineConfig::max_batch);
    f("max_context", &EngineConfig::max_context);
    f("ngram_n", &EngineConfig::ngram_n);
    f("ngram_min_n", &EngineConfig::ngram_min_n);
    f("seed", &EngineConfig::seed);
    f("stats_window", &EngineConfig::stats_window);
    f("spin_wait_us", &EngineConfig::spin_wait_us);
  }

  // Throws std::invalid_argument on the first invalid field (declaration order).
  void validate() const;
  // The field names, in declaration order.
  static std::vector<std::string> field_names() {
    std::vector<std::string> names;
    for_each_field([&names](const char* name, auto) { names.emplace_back(name); });
    return names;
  }
  // "EngineConfig(mode='ssd', K=4, ...)", for logs and the Python repr.
  std::string to_string() const;

  // KV slots per lane the target runner must provide: max_context.
  int target_slots() const { return max_context; }
  // Scratch slots per draft lane for the SSD tree branches: (largest branch count) * K in ssd mode,
  // 0 otherwise. They follow the context slots: [max_context, max_context + scratch_slots()).
  int scratch_slots() const {
    if (mode != "ssd") return 0;
    int branches = fan_out_budget;
    int listed = 0;
    for (int f : fan_out_list) listed += f;
    if (listed > branches) branches = listed;
    return branches * K;
  }
  // KV slots per lane the draft runner must provide: max_context + scratch_slots().
  int draft_slots() const { return max_context + scratch_slots(); }
};

}  // namespace ssdcore
