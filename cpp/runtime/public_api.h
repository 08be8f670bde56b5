// public_api.h: INTERNAL glue between the public C++ API (include/ssdcore/, namespace ssdcore) and
// the runtime (namespace ssd). Never included by a public header.
//
// Concept: the runtime uses the public types themselves (EngineConfig, SamplingParams, StatsSnapshot,
// RequestMetrics, ForwardBatch, Logits, ModelRunner, Phase, SpecSource, Backup, ...), so nothing is
// converted between the two. What is left is EngineBuilder: the one way the Python binding builds the
// public Engine, with its event router pinned where the caller says.
//
// Threads: EngineBuilder::make is called by the thread that constructs the engine.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "ssdcore/ssdcore.h"

namespace ssdcore {
namespace detail {

// Builds an Engine over `target` and `draft` (null: none) like Engine's constructor, with its event
// router pinned to `router_cores` (empty: anywhere).
struct EngineBuilder {
  static std::unique_ptr<Engine> make(const EngineConfig& config, ModelRunner* target, ModelRunner* draft,
                                      std::vector<std::int32_t> eos_ids, std::vector<int> router_cores,
                                      std::shared_ptr<TokenMasker> token_masker = nullptr);
};

}  // namespace detail
}  // namespace ssdcore
