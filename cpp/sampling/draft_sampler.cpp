// draft_sampler.cpp: see draft_sampler.h.
#include "draft_sampler.h"

#include <string>

#include "distribution.h"
#include "parallel_for.h"
#include "sampling_math.h"

namespace ssd {

void check_draft_params(const DraftBatch& batch) {
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
