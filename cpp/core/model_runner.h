// model_runner.h: what the runtime asks of a model (the target or the draft).
//
// A ModelRunner owns a model and its preallocated KV cache: `num_lanes` lanes (one per running
// sequence), each with `max_slots` slots = context slots [0, max_context) followed by scratch slots
// for SSD tree branches. The runtime never sees weights or KV tensors; it only sends ForwardRequests:
// N flattened rows, each a token written at (lane, slot) with a logical RoPE position, attending to
// part of its lane, and gets float32 logits back for the rows it asked for.
//
// Attention of row r (within lanes[r]):
//   - attend_len empty:   causal by slot: slots [0, slots[r]]  (prefill, decode, verification; a
//                         rollback of rejected tokens is free: later rows overwrite those slots)
//   - attend_len given:   slots [0, attend_len[r]) plus extra_slots[r*extra_width .. +extra_width)
//                         (-1 = padding); the row's own slot must be listed (SSD tree branches).
// Logits: out_index[r] >= 0 puts row r's logits at that row of the [out_rows, vocab] result;
// out_index[r] < 0 computes no logits for it. Result rows nobody wrote are unspecified.
//
// Threads: each runner is called from exactly one runtime thread (the target worker or the draft
// worker), which calls on_worker_start() once before any forward. Implementations written in Python
// take the GIL inside forward (see bindings.cpp); the runtime never holds a lock while calling.
// forward() reports failure by throwing; the runtime turns it into an error naming the side.
#pragma once
#include <cstdint>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "tensor_view.h"

namespace ssd {

struct ForwardRequest {
  std::vector<int32_t> tokens;
  std::vector<int32_t> positions;
  std::vector<int32_t> lanes;
  std::vector<int32_t> slots;
  std::vector<int32_t> attend_len;   // empty = causal by slot
  std::vector<int32_t> extra_slots;  // rows * extra_width, -1 padded
  int32_t extra_width = 0;
  std::vector<int32_t> out_index;    // per row: destination row of its logits, or -1
  int32_t out_rows = 0;

  size_t rows() const { return tokens.size(); }
  // Appends one row; returns its index.
  size_t add_row(int32_t token, int32_t position, int32_t lane, int32_t slot, int32_t out) {
    tokens.push_back(token);
    positions.push_back(position);
    lanes.push_back(lane);
    slots.push_back(slot);
    out_index.push_back(out);
    return tokens.size() - 1;
  }
};

// Float32 logits [rows, vocab], row-major and contiguous, on `device` (host memory for kCPU; memory of
// CUDA device `device_index` for kCUDA, written by work queued on `stream`, a cudaStream_t, 0 = the
// legacy default stream). `owner` keeps the storage alive (for a Python runner, the torch tensor behind
// a DLPack capsule); copies share it. The workers never copy rows: verification and draft sampling run
// where the rows are (logits_ops.h), and a speculation refers to its draft's rows (LogitsRow).
struct Logits {
  const float* data = nullptr;
  int64_t rows = 0;
  int64_t vocab = 0;
  std::shared_ptr<void> owner;
  DeviceType device = DeviceType::kCPU;
  int device_index = 0;
  std::uintptr_t stream = 0;

  const float* row(int64_t r) const { return data + r * vocab; }
  bool same_device(const Logits& o) const { return device == o.device && device_index == o.device_index; }
};

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

class ModelRunner {
 public:
  virtual ~ModelRunner() = default;
  // Width of the logits rows (the model's vocabulary, after reconciling with the tokenizer).
  virtual int64_t vocab_size() const = 0;
  // Called once on the worker thread that will make every forward call (thread count, pinning).
  virtual void on_worker_start() {}
  virtual Logits forward(const ForwardRequest& request) = 0;
};

}  // namespace ssd
