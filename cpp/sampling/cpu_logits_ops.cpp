// cpu_logits_ops.cpp: see cpu_logits_ops.h.
#include "cpu_logits_ops.h"

#include <algorithm>
#include <numeric>
#include <stdexcept>
#include <string>

#include "token_mask.h"

namespace ssd {

void CpuLogitsOps::verify(const Logits&, const VerifyBatch& vb, const VerifyResult& out) { verify_cpu(vb, out, 1); }

void CpuLogitsOps::sample_draft(const Logits&, const DraftBatch& batch, int64_t* tokens) {
  DraftResult result;
  result.tokens = tokens;
  sample_draft_cpu(batch, result, 1);
}

void CpuLogitsOps::top_tokens(const Logits& logits, const std::vector<TopRequest>& requests,
                              std::vector<std::vector<int32_t>>* out) {
  out->assign(requests.size(), {});
  std::vector<int32_t> ids(static_cast<size_t>(logits.vocab));
  for (size_t q = 0; q < requests.size(); ++q) {
    const TopRequest& req = requests[q];
    if (req.count <= 0) continue;
    const float* row = logits.row(req.row);
    std::iota(ids.begin(), ids.end(), 0);
    auto better = [row](int32_t a, int32_t b) { return row[a] > row[b] || (row[a] == row[b] && a < b); };
    const int64_t take = std::min<int64_t>(logits.vocab, req.count + 1);
    std::partial_sort(ids.begin(), ids.begin() + take, ids.end(), better);
    for (int64_t i = 0; i < take && static_cast<int32_t>((*out)[q].size()) < req.count; ++i) {
      if (ids[i] != req.exclude) (*out)[q].push_back(ids[i]);
    }
  }
}

void CpuLogitsOps::find_bad(const Logits& logits, const std::vector<int64_t>& rows, std::vector<BadLogit>* out) {
  out->assign(rows.size(), BadLogit{});
  for (size_t i = 0; i < rows.size(); ++i) {
    const float* row = logits.row(rows[i]);
    BadLogit& bad = (*out)[i];
    bad.column = bad_logit_column(row, logits.vocab);
    if (bad.column >= 0 && bad.column < logits.vocab) bad.value = row[bad.column];
  }
}

void CpuLogitsOps::apply_masks(const Logits& logits, const std::vector<int64_t>& rows, const uint32_t* masks,
                               int32_t words) {
  if (rows.empty()) return;
  if (words != mask_words(logits.vocab)) {
    throw std::invalid_argument("apply_masks: words = " + std::to_string(words) + " for a vocabulary of " +
                                std::to_string(logits.vocab) + "; allowed: ceil(vocab / 32) = " +
                                std::to_string(mask_words(logits.vocab)));
  }
  float* data = const_cast<float*>(logits.data);  // the runner's storage, writable between its forwards
  for (size_t i = 0; i < rows.size(); ++i) {
    if (rows[i] < 0 || rows[i] >= logits.rows) {
      throw std::invalid_argument("apply_masks: row " + std::to_string(rows[i]) + " of logits with " +
                                  std::to_string(logits.rows) + " rows");
    }
    apply_token_mask(data + rows[i] * logits.vocab, logits.vocab, masks + i * static_cast<size_t>(words));
  }
}

}  // namespace ssd
