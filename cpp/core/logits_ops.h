// logits_ops.h: LogitsOps, the operations the workers run on logits rows, where the rows live.
//
// Concept (ARCHITECTURE.md, "Logits stay on the device that produced them"): verification, draft
// sampling, the fork's top-F choice and the usability check read logits rows; a LogitsOps runs them on
// one kind of device (the CPU reference, cpu_logits_ops.h; the CUDA kernels, cuda/cuda_logits_ops.h)
// and hands back only small host results (token ids, accept lengths, bad columns). The workers pick
// the LogitsOps from Logits::device through LogitsBackends and never copy a row.
//
// Masking (structured output, ssdcore/token_masker.h): apply_masks writes -inf into rows of a Logits
// in place, the one op that writes; the runtime calls it right after the forward, before any other op
// reads those rows (ssdcore/model_runner.h lets it write there until the runner's next forward).
//
// Memory: every row pointer given to an op (the Logits' data, VerifyBatch::draft_rows entries) is
// memory of the Logits' device; every other array (draft tokens, parameters, fan-out, the draft_rows
// array itself, all outputs) is host memory. Results are complete when an op returns.
// Errors: ops throw (std::invalid_argument for bad arguments, std::runtime_error for device errors).
//
// Threads: a LogitsOps object may keep device buffers and is used by one thread at a time: each
// worker gets its own LogitsBackends (LogitsBackendsFactory is called once per worker).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "draft_sampler.h"
#include "model_runner.h"
#include "verifier.h"

namespace ssd {

// One fork request: the `count` highest logits of row `row` (ties: the lower id first), skipping
// token `exclude` (-1: none).
struct TopRequest {
  int64_t row = 0;
  int32_t count = 0;
  int32_t exclude = -1;
};

class LogitsOps {
 public:
  virtual ~LogitsOps() = default;
  // verify_cpu's semantics (verifier.h) with vb.target_logits == target.data.
  virtual void verify(const Logits& target, const VerifyBatch& vb, const VerifyResult& out) = 0;
  // sample_draft_cpu's semantics (draft_sampler.h) on rows 0..batch.rows-1 of `logits`
  // (batch.logits == logits.data); writes batch.rows tokens.
  virtual void sample_draft(const Logits& logits, const DraftBatch& batch, int64_t* tokens) = 0;
  // (*out)[i] = the tokens of request i, best first.
  virtual void top_tokens(const Logits& logits, const std::vector<TopRequest>& requests,
                          std::vector<std::vector<int32_t>>* out) = 0;
  // (*out)[i] = the usability of row rows[i] (BadLogit; column -1 = usable).
  virtual void find_bad(const Logits& logits, const std::vector<int64_t>& rows, std::vector<BadLogit>* out) = 0;
  // For each i, sets row rows[i] of `logits` to -inf wherever masks[i * words ..] (host memory, the
  // layout of token_mask.h, words = ceil(vocab / 32)) has a 0 bit: apply_token_mask on every row. The
  // storage must be writable (the runner's, between its forwards).
  virtual void apply_masks(const Logits& logits, const std::vector<int64_t>& rows, const uint32_t* masks,
                           int32_t words) = 0;
};

// The LogitsOps for each device kind one worker may meet.
struct LogitsBackends {
  std::shared_ptr<LogitsOps> cpu;
  std::shared_ptr<LogitsOps> cuda;  // null in a build without the CUDA kernels

  // The ops for `logits`' device; throws std::runtime_error naming the device when there are none
  // (e.g. CUDA logits in a build without CUDA kernels).
  LogitsOps& on(const Logits& logits) const;
};

// The CPU reference, plus the CUDA kernels when this build has them (SSD_WITH_CUDA).
LogitsBackends built_in_logits_backends();

using LogitsBackendsFactory = std::function<LogitsBackends()>;

// Throws NonFiniteLogits ("<side> logits are not finite at position P (...)") for the first unusable row
// of `rows` (positions[i] is the position row rows[i] predicts). One find_bad call. With `masked` and
// `emptied`: a row with masked[i] set (masked in place for structured output) whose only defect is that
// no finite entry is left is reported as (*emptied)[i] = 1 instead: its mask and the model's support do
// not meet (e.g. a draft with a reduced vocabulary that lacks every token the grammar allows here).
void check_rows_finite(LogitsOps& ops, const Logits& logits, const std::vector<int64_t>& rows,
                       const std::vector<int64_t>& positions,
                       const std::vector<char>* masked = nullptr, std::vector<char>* emptied = nullptr);

}  // namespace ssd
