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

// Checks sizes and per-row parameters; throws std::invalid_argument.
void check_draft_params(const DraftBatch& batch);

void sample_draft_cpu(const DraftBatch& batch, const DraftResult& result, int num_threads = 0);

}  // namespace ssd
