// row_masker.h: RowMasker, one worker's link to the TokenMasker (ssdcore/token_masker.h): it records,
// for each constrained output row of the forward being built, the row's MaskRow context, and after the
// forward masks those logits rows in place (one fill_masks call, one LogitsOps::apply_masks call).
//
// Use per forward: clear(); add() (and extend_path()) for every output row of a constrained sequence;
// run the forward; apply(ops, logits) before anything reads the rows. With no row added, apply() does
// nothing: an unconstrained round calls nothing and allocates nothing (the buffers keep their capacity).
//
// Rows whose mask allows no token are left unmasked and flagged (Row::none_allowed): the caller decides
// (the target fails the request if it uses the row, the draft proposes from the unmasked row).
// A TokenMasker that throws makes the target's apply() throw TokenMaskerError ("token masker failed:
// ..."), which fails the constrained requests of that forward. On the draft side (side 1) a failing
// masker is not an error: the draft's rows stay unmasked (as rows whose mask allows nothing do), the
// failure is counted (Stats::record_draft_mask_failure), and the target's own masking still decides
// what is emitted: a draft proposal is only advice, verified against the target's masked p with the
// q it was drawn from, so the output stays exact and no request fails for the draft's sake.
//
// Invariants: `generated` pointers given to add() stay valid until apply() returns (they point into a
// sequence's token vector, which no one changes during a forward); paths are copied.
// Threads: one RowMasker per worker, used by that worker's thread only; `side` (0 target, 1 draft) is
// passed to the masker so that it keeps the sides' states apart.
#pragma once
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "logits_ops.h"
#include "stats.h"
#include "ssdcore/token_masker.h"

namespace ssd {

using ssdcore::MaskRow;
using ssdcore::TokenMasker;

// The TokenMasker threw; what() is "token masker failed: <its message>".
struct TokenMaskerError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class RowMasker {
 public:
  struct Row {
    int64_t tag = 0;            // the caller's (a sequence id)
    int32_t local = 0;          // the caller's (the row's index within its sequence's rows)
    int64_t out_row = 0;        // logits row
    int64_t constraint = 0;
    const int32_t* generated = nullptr;
    int32_t n_generated = 0;
    size_t path_begin = 0, path_end = 0;  // in path_
    bool none_allowed = false;  // after apply(): the mask allowed no token, the row is unmasked
  };

  // side: 0 = target, 1 = draft; phase: where the masking time goes in Stats.
  RowMasker(std::shared_ptr<TokenMasker> masker, int side, Stats* stats, Phase phase)
      : masker_(std::move(masker)), side_(side), stats_(stats), phase_(phase) {}

  bool enabled() const { return masker_ != nullptr; }
  void clear() { rows_.clear(), path_.clear(); }
  bool empty() const { return rows_.empty(); }
  // Records output row `out_row` of a sequence with `constraint` > 0; its path starts empty.
  void add(int64_t tag, int32_t local, int64_t out_row, int64_t constraint, const int32_t* generated,
           int32_t n_generated);
  // Appends n tokens to the path of the row added last.
  void extend_path(const int32_t* tokens, int32_t n);
  // Masks every recorded row of `logits` (see the file comment). Throws TokenMaskerError.
  void apply(LogitsOps& ops, const Logits& logits);
  const std::vector<Row>& rows() const { return rows_; }
  // After apply(): (*out)[i] = 1 when logits row rows[i] was masked (recorded, and its mask allowed
  // some token); all 0 when nothing was recorded.
  void masked_flags(const std::vector<int64_t>& rows, std::vector<char>* out) const;
  // After apply(): the mask applied to logits row `out_row` (host memory, token_mask.h layout), or
  // null when the row was not recorded or was left unmasked. Rows must have been added in increasing
  // out_row order (every caller does).
  const uint32_t* mask_at(int64_t out_row) const;

 private:
  std::shared_ptr<TokenMasker> masker_;
  int side_;
  Stats* stats_;
  Phase phase_;
  std::vector<Row> rows_;
  std::vector<int32_t> path_;
  std::vector<MaskRow> mask_rows_;
  std::vector<uint32_t> masks_;     // [rows, words_], as the masker filled them
  std::vector<uint32_t> applied_;   // the masks of the rows that allow some token, when not all do
  std::vector<int64_t> out_rows_;
  int32_t words_ = 0;
};

}  // namespace ssd
