// cpu_model_runner.h: a ModelRunner that runs a CpuModel (cpu_model.h) directly from the worker thread,
// with no Python and no GIL anywhere in a forward.
//
// ssdcore.engine.model_runner.ModelRunner builds one (through cpp/bindings/) when its model qualifies
// for the native CPU forward, and the Python Engine hands it to the engine in place of the Python
// runner; the engine then calls it like any runner, with the same int32 ForwardBatch. The KV cache and RoPE tables are the
// Python model's tensors, borrowed: the Python runner that made this object keeps them (and the
// weights) alive, and nothing else writes them while an engine runs.
//
// Threads: forward() and on_worker_start() are called by the one worker thread that owns the runner
// (model_runner.h). on_worker_start() pins that thread to `cores` (Linux; elsewhere a no-op) and, for
// threads > 1, starts the ThreadTeam (thread_team.h) whose helpers the forwards split their work over
// (pinned to the same cores); the logits are bitwise those of one thread.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "cpu_model.h"
#include "model_runner.h"

namespace ssd {

class CpuModelRunner final : public ModelRunner {
 public:
  // `model` must outlive the runner; `vocab` is the logits width, of which the first `lm_rows`
  // columns are computed and the rest are -inf.
  CpuModelRunner(std::shared_ptr<const CpuModel> model, const CpuKvCache& kv, const CpuRope& rope, int64_t vocab,
                 int64_t lm_rows, std::vector<int> cores, int threads = 1);

  int64_t vocab_size() const override { return vocab_; }
  void on_worker_start() override;
  int threads() const { return threads_; }
  Logits forward(const ForwardBatch& batch) override;
  int64_t forward_calls() const { return calls_; }

 private:
  std::shared_ptr<const CpuModel> model_;
  CpuKvCache kv_;
  CpuRope rope_;
  int64_t vocab_, lm_rows_;
  std::vector<int> cores_;
  int threads_;
  std::unique_ptr<ThreadTeam> team_;  // started by on_worker_start() when threads_ > 1
  int64_t calls_ = 0;
};

}  // namespace ssd
