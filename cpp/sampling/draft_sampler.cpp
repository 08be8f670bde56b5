// draft_sampler.cpp: see draft_sampler.h.
#include "draft_sampler.h"

#include "distribution.h"
#include "parallel_for.h"
#include "sampling_math.h"

namespace ssd {

void sample_draft_cpu(const DraftBatch& batch, const DraftResult& result, int num_threads) {
  check_draft_params(batch);
  const int64_t elements = static_cast<int64_t>(batch.rows) * batch.vocab;
  const int threads = elements < (1 << 17) ? 1 : num_threads;
  parallel_for(batch.rows, threads, [&](int64_t r) {
    thread_local RowScratch sc;
    const DraftRowParams& p = batch.params[r];
    const float* row = batch.logits + static_cast<size_t>(r) * batch.vocab;
    alignas(64) double lanes[kLanes];
    const RowStats s = compute_row_stats(row, batch.vocab, p.sampling, p.saguaro, sc, lanes);
    const double u = uniform01(p.seed, p.position, kPurposeDraft, 0);
    result.tokens[r] = sample_row(s, row, batch.vocab, lanes, u);
    if (result.probs) write_row_probs(s, row, batch.vocab, result.probs + static_cast<size_t>(r) * batch.vocab);
  });
}

}  // namespace ssd
