// forward_batch_builder.h: ForwardBatchBuilder, the storage behind the ForwardBatches the runtime
// sends its runners (ssdcore/model_runner.h defines what the rows mean).
//
// Concept: a worker appends rows (add_row, plus attend_len / extra_slots for tree rows) into owning
// int32 arrays, then run() hands the runner a ForwardBatch view of them and checks the logits it
// returns. The builder is the only place the runtime makes a ForwardBatch.
//
// Invariants: every per-row array has rows() entries, except attend_len (empty = causal, else rows()
// entries) and extra_slots (rows() * extra_width entries, -1 padded, only with attend_len). view() is
// valid while the builder lives and is not appended to.
// Threads: owned and used by one worker thread.
#pragma once
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "model_runner.h"

namespace ssd {

struct ForwardBatchBuilder {
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

  // The read-only view a runner receives.
  ForwardBatch view() const {
    ForwardBatch b;
    b.rows = rows();
    b.tokens = tokens.data();
    b.positions = positions.data();
    b.lanes = lanes.data();
    b.slots = slots.data();
    b.attend_len = attend_len.empty() ? nullptr : attend_len.data();
    b.extra_slots = b.attend_len == nullptr || extra_slots.empty() ? nullptr : extra_slots.data();
    b.extra_width = b.extra_slots == nullptr ? 0 : extra_width;
    b.out_index = out_index.data();
    b.out_rows = out_rows;
    return b;
  }

  // runner.forward(view()); throws std::runtime_error naming `side` ("target" / "draft") when the
  // logits do not cover [out_rows, vocab_size()].
  Logits run(ModelRunner& runner, const char* side) const {
    Logits out = runner.forward(view());
    const int64_t vocab = runner.vocab_size();
    if (out_rows > 0 && (out.data == nullptr || out.rows < out_rows || out.vocab != vocab)) {
      throw std::runtime_error(std::string(side) + " ModelRunner::forward returned logits of shape [" +
                               std::to_string(out.rows) + ", " + std::to_string(out.vocab) + "]" +
                               (out.data == nullptr ? " with no data" : "") + "; expected at least [" +
                               std::to_string(out_rows) + ", " + std::to_string(vocab) + "]");
    }
    return out;
  }
};

}  // namespace ssd
