// cpu_logits_ops.h: CpuLogitsOps, the LogitsOps for host logits: the CPU reference (verify_cpu,
// sample_draft_cpu, bad_logit_column, apply_token_mask) run on one thread, as the workers always did.
//
// Threads: stateless; any thread.
#pragma once
#include "logits_ops.h"

namespace ssd {

class CpuLogitsOps final : public LogitsOps {
 public:
  void verify(const Logits& target, const VerifyBatch& vb, const VerifyResult& out) override;
  void sample_draft(const Logits& logits, const DraftBatch& batch, int64_t* tokens) override;
  void top_tokens(const Logits& logits, const std::vector<TopRequest>& requests,
                  std::vector<std::vector<int32_t>>* out) override;
  void find_bad(const Logits& logits, const std::vector<int64_t>& rows, std::vector<BadLogit>* out) override;
  void apply_masks(const Logits& logits, const std::vector<int64_t>& rows, const uint32_t* masks,
                   int32_t words) override;
};

}  // namespace ssd
