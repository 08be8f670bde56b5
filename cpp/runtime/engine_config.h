// engine_config.h: EngineConfig, the ONE configuration struct of the engine.
//
// Concept: every engine knob in one plain struct, mirrored field for field (same names, same order,
// same defaults) by the Python frozen dataclass ssdcore.EngineConfig; field_names() lists the fields
// in declaration order so a Python test keeps the two in sync. Enumerations cross the boundary as
// plain strings ("ssd", "uniform", ...) and are parsed into enum classes (Mode, FanOutMode, Backup)
// inside the runtime with parse_*() / to_string().
//
// Invariants: none are enforced on assignment. validate() checks everything once (the engine calls
// it at construction) and throws std::invalid_argument naming the field, the value given and what is
// allowed, e.g. "EngineConfig.K = 0 is invalid: allowed 1..32". After a successful validate() the
// *_enum() accessors do not throw.
//
// Threads: a plain value type; concurrent const use is safe, mutation needs external locking.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace ssd {

// How the engine decodes: speculative speculative decoding, plain (synchronous) speculative decoding,
// or autoregressive target-only decoding.
enum class Mode { kSsd, kSd, kAr };
// How the fan-out budget F is spread over the K+1 outcome positions (SSD_SPEC section 3).
enum class FanOutMode { kUniform, kList, kGeometric };
// What makes a speculation on a cache miss (SSD_SPEC section 6).
enum class Backup { kAuto, kJit, kNgram, kNone };

// Canonical names ("ssd", "sd", "ar"; "uniform", "list", "geometric"; "auto", "jit", "ngram", "none").
const char* to_string(Mode m);
const char* to_string(FanOutMode m);
const char* to_string(Backup b);
// Parse a canonical name (exact, lower case). Throws std::invalid_argument listing the allowed names,
// e.g. `unknown mode "x": allowed "ssd", "sd", "ar"`.
Mode parse_mode(const std::string& s);
FanOutMode parse_fan_out_mode(const std::string& s);
Backup parse_backup(const std::string& s);

struct EngineConfig {
  // Limits used by validate() (also handy for callers and tests).
  static constexpr int kMaxK = 32;
  static constexpr int kMaxFanOut = 256;
  static constexpr int kMinContext = 16;
  static constexpr int kMaxNgramN = 8;
  static constexpr int kMaxSpinWaitUs = 1000000;
  // Hard caps that refuse absurd values before any memory is touched; what fits a machine is
  // checked against its memory where the KV caches are sized (the Python layer, before allocation).
  static constexpr int kMaxBatch = 4096;
  static constexpr int kMaxContext = 1 << 20;

  std::string mode = "ssd";              // "ssd" | "sd" | "ar"
  int K = 4;                             // draft length, 1..32
  std::string fan_out_mode = "uniform";  // "uniform" | "list" | "geometric"
  int fan_out_budget = 8;                // F: outcomes per sequence per round, 1..256
  std::vector<int> fan_out_list;         // list mode only: K+1 entries >= 0, sum 1..256; else empty
  std::string backup = "auto";           // "auto" | "jit" | "ngram" | "none"
  int auto_jit_max_batch = 8;            // auto's prior: jit when batch <= this, else ngram; >= 0
  double saguaro_c = 1.0;                // Saguaro down-weighting C, [0, 1]; 1 = plain sampling
  int max_batch = 8;                     // sequences per round, 1..4096
  int max_context = 1024;                // tokens per sequence (prompt + generated), 16..2^20
  int ngram_n = 3;                       // n-gram match length of the ngram backup, 1..8
  std::uint64_t seed = 0;                // engine default seed (requests may override)
  int stats_window = 256;                // rounds of history for online estimates, >= 1
  int spin_wait_us = 0;                  // a worker polls this long for the other before parking,
                                         // 0..1000000; > 0 only when each worker has its own cores

  // Throws std::invalid_argument on the first invalid field (declaration order).
  void validate() const;
  // The field names above, in declaration order.
  static std::vector<std::string> field_names();

  // Parsed enums (throw like parse_*() when the string is invalid).
  Mode mode_enum() const { return parse_mode(mode); }
  FanOutMode fan_out_mode_enum() const { return parse_fan_out_mode(fan_out_mode); }
  Backup backup_enum() const { return parse_backup(backup); }

  // One line, "EngineConfig(mode='ssd', K=4, ...)", for logs and Python repr.
  std::string to_string() const;
};

}  // namespace ssd
