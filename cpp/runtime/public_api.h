// public_api.h: INTERNAL glue between the public C++ API (include/ssdcore/, namespace ssdcore) and
// the runtime (namespace ssd). Never included by a public header.
//
// Concept: the runtime uses the public value types themselves (EngineConfig, SamplingParams,
// StatsSnapshot, RequestMetrics, FinishReason, ErrorKind); what is left to adapt is the model runner:
// RunnerAdapter presents an application's ssdcore::ModelRunner to the runtime as an
// ssd::ModelRunner, handing it a zero-copy ForwardBatch view and checking the logits it returns.
//
// Threads: make_batch is a pure function. A RunnerAdapter is called by exactly the worker thread
// that drives its runner (as the runner is).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "engine_config.h"
#include "messages.h"
#include "model_runner.h"
#include "sequence.h"
#include "ssdcore/ssdcore.h"
#include "stats.h"

namespace ssdcore {
namespace detail {

// The read-only view of a request (pointers into `req`, valid while it lives).
ForwardBatch make_batch(const ssd::ForwardRequest& req);

// Builds an Engine over runners that already speak the runtime's interface (the Python binding's
// PyModelRunner and CpuModelRunner), with its event router pinned to `router_cores` (empty: anywhere).
struct EngineBuilder {
  static std::unique_ptr<Engine> make(const EngineConfig& config, ssd::ModelRunner* target,
                                      ssd::ModelRunner* draft, std::vector<int32_t> eos_ids,
                                      std::vector<int> router_cores);
};

class RunnerAdapter final : public ssd::ModelRunner {
 public:
  // side: "target" or "draft", used in error messages. runner must not be null.
  RunnerAdapter(ssdcore::ModelRunner* runner, const char* side) : runner_(runner), side_(side) {}
  int64_t vocab_size() const override { return runner_->vocab_size(); }
  void on_worker_start() override { runner_->on_worker_start(); }
  // Throws std::runtime_error when the logits do not cover [out_rows, vocab_size()].
  ssd::Logits forward(const ssd::ForwardRequest& request) override;

 private:
  ssdcore::ModelRunner* runner_;
  const char* side_;
};

}  // namespace detail
}  // namespace ssdcore
