// draft_sampler.h: the draft-side sampler on the CPU, the twin of verification (SSD_SPEC sections 4, 5).
//
// Row r samples one token from q'_r: its logits transformed with its SamplingTransform (temperature, top-k,
// top-p) and Saguaro (C, F), computed by the same compute_row_stats() the verifier uses on draft rows, with
// the uniform keyed by (seed, position, DRAFT). Passing the same logits and parameters to verify_cpu (or
// the CUDA kernels) therefore tests each proposal against exactly the q' it was drawn from: verification is
// lossless. Temperature 0 returns the argmax (Saguaro has no effect). Optionally writes q' as float32.
//
// Thread safety: any thread; uses up to num_threads std::threads (0 = default) and joins them.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

#include "sampling_transform.h"

namespace ssd {

struct DraftBatch {
  int32_t rows = 0;                        // N
  int32_t vocab = 0;                       // V
  const float* logits = nullptr;           // [N, V] row-major contiguous
  const DraftRowParams* params = nullptr;  // [N]
};

struct DraftResult {
  int64_t* tokens = nullptr;  // [N]
  float* probs = nullptr;     // [N, V] q' per row, or null
};

// Checks sizes and per-row parameters (host arrays; no logits are read); throws std::invalid_argument.
// Inline (header-only core): the CPU reference and the CUDA kernels' host side both call it.
inline void check_draft_params(const DraftBatch& batch) {
  if (batch.rows < 0 || batch.vocab <= 0)
    throw std::invalid_argument("sample_draft: sizes must be N >= 0, V >= 1; got N=" + std::to_string(batch.rows) +
                                " V=" + std::to_string(batch.vocab));
  if (batch.rows > 0 && (!batch.logits || !batch.params))
    throw std::invalid_argument("sample_draft: logits and params must not be null");
  for (int r = 0; r < batch.rows; ++r) {
    const DraftRowParams& p = batch.params[r];
    const std::string where = "row " + std::to_string(r);
    check_sampling_transform(p.sampling, where);
    check_saguaro_c(p.saguaro.c, where);
    if (p.saguaro.fanout < 0)
      throw std::invalid_argument(where + ".saguaro_fanout: got " + std::to_string(p.saguaro.fanout) +
                                  "; allowed: >= 0");
  }
}

void sample_draft_cpu(const DraftBatch& batch, const DraftResult& result, int num_threads = 0);

}  // namespace ssd
