// engine.h: the SSD engine: one target worker, one draft worker (sd and ssd modes; none in
// draft-free sd), the channels between them, the scheduler and the stats. The C++ entry point used by
// the Python bindings and by native applications.
//
// Lifecycle: construct with a validated EngineConfig and the runners (the draft runner may be null
// in ar mode, and in sd mode with backup "ngram": draft-free speculation, where no draft worker runs
// and the target worker proposes each round by n-gram lookup itself), submit requests from any
// thread, poll output events from one consumer thread at a time, close() (idempotent; the
// destructor calls it) stops the workers and joins them. Requests still running or queued at close
// finish with an error event (ErrorKind::kClosed). Runners must outlive the Engine. The constructor
// throws std::runtime_error when a worker cannot start (its runner's on_worker_start() failed, e.g.
// pinning), after stopping whatever it had started.
#pragma once
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "channel.h"
#include "draft_worker.h"
#include "engine_config.h"
#include "logits_ops.h"
#include "messages.h"
#include "model_runner.h"
#include "scheduler.h"
#include "stats.h"
#include "target_worker.h"

namespace ssd {

class Engine {
 public:
  // backends: called once per worker, for the LogitsOps that run where each side's logits live.
  // masker: the TokenMasker of constrained requests (SamplingParams::constraint > 0), or null (then
  // such requests are rejected); shared by both workers, which call it with their own side.
  Engine(const EngineConfig& config, ModelRunner* target, ModelRunner* draft,
         std::vector<int32_t> eos_ids, const LogitsBackendsFactory& backends = built_in_logits_backends,
         std::shared_ptr<TokenMasker> masker = nullptr);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Any thread. Throws std::invalid_argument for an empty prompt, a token outside the vocabulary,
  // invalid sampling parameters, a constraint without a TokenMasker, or prompt + max_tokens beyond
  // max_context.
  int64_t submit(std::vector<int32_t> prompt, const SamplingParams& params, bool stream = true);
  void cancel(int64_t id);
  // One consumer at a time (serialised by a mutex). kTimeout when nothing arrived in time.
  PopStatus poll(OutputEvent* event, std::chrono::milliseconds timeout);
  StatsSnapshot stats() const { return stats_.snapshot(); }
  void reset_stats() { stats_.reset(); }
  const EngineConfig& config() const { return config_; }
  void close();

 private:
  void check_request(const std::vector<int32_t>& prompt, const SamplingParams& params) const;

  EngineConfig config_;
  int64_t vocab_ = 0;
  bool has_masker_ = false;
  Stats stats_;
  Scheduler scheduler_;
  Channel<ToDraft> to_draft_;
  Channel<ToTarget> from_draft_;
  Channel<OutputEvent> events_;
  std::unique_ptr<DraftWorker> draft_;
  std::unique_ptr<TargetWorker> target_;
  std::mutex poll_mutex_;
  std::mutex close_mutex_;
  bool closed_ = false;
};

}  // namespace ssd
