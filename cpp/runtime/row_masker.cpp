// row_masker.cpp: see row_masker.h.
#include "row_masker.h"

#include <algorithm>
#include <exception>

#include "token_mask.h"

namespace ssd {

void RowMasker::add(int64_t tag, int32_t local, int64_t out_row, int64_t constraint, const int32_t* generated,
                    int32_t n_generated) {
  Row r;
  r.tag = tag, r.local = local, r.out_row = out_row, r.constraint = constraint;
  r.generated = generated, r.n_generated = n_generated;
  r.path_begin = r.path_end = path_.size();
  rows_.push_back(r);
}

void RowMasker::extend_path(const int32_t* tokens, int32_t n) {
  if (rows_.empty() || n <= 0) return;
  path_.insert(path_.end(), tokens, tokens + n);
  rows_.back().path_end = path_.size();
}

void RowMasker::apply(LogitsOps& ops, const Logits& logits) {
  if (rows_.empty()) return;
  ScopedTimer timer(stats_, phase_);
  const int32_t words = mask_words(logits.vocab);
  const size_t n = rows_.size();
  mask_rows_.resize(n);
  for (size_t i = 0; i < n; ++i) {
    const Row& r = rows_[i];
    mask_rows_[i] = MaskRow{r.constraint, r.generated, r.n_generated, path_.data() + r.path_begin,
                            static_cast<int32_t>(r.path_end - r.path_begin)};
  }
  masks_.assign(n * static_cast<size_t>(words), 0u);
  std::string error;
  try {
    masker_->fill_masks(side_, mask_rows_.data(), static_cast<int32_t>(n), masks_.data(), words);
  } catch (const std::exception& e) {
    error = std::string("token masker failed: ") + e.what();
  } catch (...) {
    error = "token masker failed: an exception that is not a std::exception";
  }
  if (!error.empty()) {
    if (side_ == 0) throw TokenMaskerError(error);
    for (Row& r : rows_) r.none_allowed = true;  // the draft: every row unmasked (see the file comment)
    masks_.clear();
    if (stats_ != nullptr) stats_->record_draft_mask_failure();
    return;
  }
  words_ = words;
  out_rows_.clear();
  bool all = true;
  for (size_t i = 0; i < n; ++i) {
    rows_[i].none_allowed = mask_allows_none(masks_.data() + i * words, logits.vocab);
    all &= !rows_[i].none_allowed;
    if (!rows_[i].none_allowed) out_rows_.push_back(rows_[i].out_row);
  }
  if (out_rows_.empty()) return;
  if (all) return ops.apply_masks(logits, out_rows_, masks_.data(), words);
  applied_.clear();  // rare: some row allows nothing; pass the others' masks only
  for (size_t i = 0; i < n; ++i) {
    if (!rows_[i].none_allowed) applied_.insert(applied_.end(), masks_.data() + i * words, masks_.data() + (i + 1) * words);
  }
  ops.apply_masks(logits, out_rows_, applied_.data(), words);
}

void RowMasker::masked_flags(const std::vector<int64_t>& rows, std::vector<char>* out) const {
  out->assign(rows.size(), 0);
  for (size_t i = 0; i < rows.size() && !rows_.empty(); ++i) out->at(i) = mask_at(rows[i]) != nullptr ? 1 : 0;
}

const uint32_t* RowMasker::mask_at(int64_t out_row) const {
  auto it = std::lower_bound(rows_.begin(), rows_.end(), out_row,
                             [](const Row& r, int64_t row) { return r.out_row < row; });
  if (it == rows_.end() || it->out_row != out_row || it->none_allowed || masks_.empty()) return nullptr;
  return masks_.data() + static_cast<size_t>(it - rows_.begin()) * words_;
}

}  // namespace ssd
