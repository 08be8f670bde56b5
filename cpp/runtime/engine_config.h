// engine_config.h: the runtime's view of EngineConfig, the ONE configuration struct of the engine.
//
// Concept: the struct itself is the public ssdcore::EngineConfig (ssdcore/config.h: fields, limits,
// the field list); this header names it ssd::EngineConfig and parses its string enumerations
// ("ssd", "uniform", ...) into enum classes (Mode, FanOutMode, and the public Backup of
// ssdcore/stats.h) with parse_*() / to_string().
// engine_config.cpp implements its validate() and to_string().
//
// Invariants: validate() checks everything once (the engine calls it at construction) and throws
// std::invalid_argument naming the field, the value given and what is allowed, e.g.
// "EngineConfig.K = 0 is invalid: allowed 1..32". After a successful validate() the *_of()
// accessors do not throw.
//
// Threads: pure functions over a plain value type.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "ssdcore/config.h"
#include "ssdcore/stats.h"

namespace ssd {

// How the engine decodes: speculative speculative decoding, plain (synchronous) speculative decoding,
// or autoregressive target-only decoding.
enum class Mode { kSsd, kSd, kAr };
// How the fan-out budget F is spread over the K+1 outcome positions (SSD_SPEC section 3).
enum class FanOutMode { kUniform, kList, kGeometric };
// What makes a speculation on a cache miss (SSD_SPEC section 6): the public enumeration.
using ssdcore::Backup;
using ssdcore::kNumBackups;
using ssdcore::to_string;  // of Backup (and the other public enumerations)

// Canonical names ("ssd", "sd", "ar"; "uniform", "list", "geometric"; "auto", "jit", "ngram", "none").
const char* to_string(Mode m);
const char* to_string(FanOutMode m);
// Parse a canonical name (exact, lower case). Throws std::invalid_argument listing the allowed names,
// e.g. `unknown mode "x": allowed "ssd", "sd", "ar"`.
Mode parse_mode(const std::string& s);
FanOutMode parse_fan_out_mode(const std::string& s);
Backup parse_backup(const std::string& s);

// The engine's one configuration type (ssdcore/config.h), validated there.
using EngineConfig = ssdcore::EngineConfig;

// A validated config's enumerations, parsed (throw like parse_*() when the string is invalid).
inline Mode mode_of(const EngineConfig& c) { return parse_mode(c.mode); }
inline FanOutMode fan_out_mode_of(const EngineConfig& c) { return parse_fan_out_mode(c.fan_out_mode); }
inline Backup backup_of(const EngineConfig& c) { return parse_backup(c.backup); }

}  // namespace ssd
