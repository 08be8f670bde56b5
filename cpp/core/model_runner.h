// model_runner.h: the runner contract as the runtime uses it, and what it checks on logits rows.
//
// Concept: the runner types are the public ones (ssdcore/model_runner.h): every runner, an
// application's, the Python binding's (PyModelRunner) and the native CPU model's (CpuModelRunner),
// implements ssdcore::ModelRunner, receives an int32 ssdcore::ForwardBatch and returns
// ssdcore::Logits (device, stream, pointer, shape). This header names them in namespace ssd and adds
// what the workers need on top: LogitsRow (one row kept alive by its handle) and the usability check
// of a row (bad_logit_column). The runtime builds its batches with ForwardBatchBuilder
// (cpp/runtime/forward_batch_builder.h).
//
// Logits stay where the runner produced them: verification and draft sampling run there
// (logits_ops.h), and a speculation refers to its draft's rows (LogitsRow); the workers never copy a
// row.
//
// Threads: each runner is called from exactly one runtime thread (the target worker or the draft
// worker), which calls on_worker_start() once before any forward. Implementations written in Python
// take the GIL inside forward (cpp/bindings/py_model_runner.h); the runtime never holds a lock while
// calling. forward() reports failure by throwing; the runtime turns it into an error naming the side.
#pragma once
#include <cstdint>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "ssdcore/model_runner.h"
#include "tensor_view.h"

namespace ssd {

using ssdcore::ForwardBatch;
using ssdcore::Logits;
using ssdcore::ModelRunner;

// One row of some Logits, kept alive by its handle: e.g. the draft logits row a proposal was drawn from.
struct LogitsRow {
  Logits logits;
  int64_t row = 0;

  const float* data() const { return logits.row(row); }
};

// Thrown by a worker whose model produced an unusable logits row; the message names the position.
struct NonFiniteLogits : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// What LogitsOps::find_bad reports for one row: bad_logit_column's answer, and the value found there
// (read only when column < vocab).
struct BadLogit {
  int64_t column = -1;
  float value = 0.0f;
};

// A usable logits row has no NaN, no +inf and at least one finite entry (-inf is a zero probability:
// runners use it for vocabulary columns a model cannot produce). Returns the first bad column, or
// n when every entry is -inf, or -1 when the row is usable.
inline int64_t bad_logit_column(const float* row, int64_t n) {
  constexpr float kInf = std::numeric_limits<float>::infinity();
  int all_below_inf = 1, any_above_neg_inf = 0;  // branch-free pass (vectorises): the usual case
  for (int64_t c = 0; c < n; ++c) {
    all_below_inf &= row[c] < kInf ? 1 : 0;      // false for NaN and +inf
    any_above_neg_inf |= row[c] > -kInf ? 1 : 0;  // some finite entry
  }
  if (all_below_inf) return any_above_neg_inf ? -1 : n;
  for (int64_t c = 0; c < n; ++c)
    if (!(row[c] < kInf)) return c;
  return n;
}

// "logits are not finite at position P (NaN at token c)" when the row (of n entries) is unusable,
// else "".
inline std::string non_finite_message(const BadLogit& bad, int64_t n, int64_t position) {
  const int64_t c = bad.column;
  if (c < 0) return "";
  const std::string what = c == n ? std::string("no finite entry")
                                  : (bad.value != bad.value ? "NaN" : "+inf") + std::string(" at token ") + std::to_string(c);
  return "logits are not finite at position " + std::to_string(position) + " (" + what + ")";
}

}  // namespace ssd
