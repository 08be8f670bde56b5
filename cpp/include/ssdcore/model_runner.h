// ssdcore/model_runner.h: ssdcore::ModelRunner, the interface a native application implements to
// plug a model (the target or the draft) into the engine, and the types it exchanges.
//
// KV layout. A runner owns its model and a preallocated KV cache of EngineConfig::max_batch lanes
// (one per running sequence), each with target_slots() slots on the target and draft_slots() on the
// draft (see ssdcore/config.h): context slots [0, max_context) then, on the draft in ssd mode,
// scratch slots for the SSD tree branches. The engine never sees weights or KV; it sends
// ForwardBatches and reads logits back.
//
// A ForwardBatch is N rows. Row r puts token tokens[r], at logical (RoPE) position positions[r],
// into slot slots[r] of lane lanes[r] (overwriting what was there), and attends to part of the same
// lane, read AFTER every row of the batch has written its slot:
//   - attend_len == nullptr (causal):  slots [0, slots[r]]. Prefill, decode and verification; a
//     rollback of rejected tokens costs nothing since later rows overwrite those slots.
//   - attend_len != nullptr (tree):    slots [0, attend_len[r]) followed by the listed slots
//     extra_slots[r * extra_width .. r * extra_width + extra_width), in that order, skipping -1.
//     The row's own slot is listed. Used by the SSD tree decode on the draft: each branch sees the
//     committed prefix, the glue tokens and its own branch tokens, nothing else.
// In both cases the attended slots, in the order given, are the row's context in position order:
// their count is positions[r] + 1 and the last one is the row's own slot.
// Output: out_index[r] >= 0 asks for row r's logits in row out_index[r] of the result; -1 asks for
// none. The result is float32 [rows >= out_rows, vocab_size()] row-major, in host memory by default
// or on a CUDA device (see Logits); result rows that no row asked for are never read. The engine
// checks the shape and fails the round's sequences when it does not cover the batch.
//
// These are the engine's own types: every runner (an application's, the Python binding's, the
// native CPU model's) receives the same ForwardBatch and returns the same Logits.
//
// Threads: each runner is driven by exactly one engine worker thread (the target worker or the
// draft worker; one runner object per worker, never share one between the two or between engines).
// That thread calls on_worker_start() once, then every forward(). vocab_size() is called from the
// thread that constructs the Engine. The engine holds no lock while calling a runner, so a runner
// may block (e.g. wait for a GPU stream) freely.
// Errors: forward() reports failure by throwing (any std::exception). The engine then finishes the
// sequences of that round with FinishReason::kError and an error text naming the side and the
// exception's what(); the engine stays usable for later requests.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "ssdcore/device.h"

namespace ssdcore {

// One batched forward, as a read-only view of arrays the engine owns; valid only during the
// forward() call that receives it (copy what you need to keep).
struct ForwardBatch {
  std::size_t rows = 0;                       // N
  const std::int32_t* tokens = nullptr;       // [N] token ids
  const std::int32_t* positions = nullptr;    // [N] logical positions (RoPE)
  const std::int32_t* lanes = nullptr;        // [N] KV lane, 0 .. max_batch-1
  const std::int32_t* slots = nullptr;        // [N] slot written, within the lane
  const std::int32_t* attend_len = nullptr;   // [N] tree rows: prefix slot count; nullptr = causal
  const std::int32_t* extra_slots = nullptr;  // [N * extra_width] tree rows: listed slots, -1 = pad
  std::int32_t extra_width = 0;
  const std::int32_t* out_index = nullptr;    // [N] result row of each row's logits, or -1
  std::int32_t out_rows = 0;                  // rows the result must have (at least)

  bool causal() const { return attend_len == nullptr; }

  // Calls fn(slot) for every slot row r attends to, in context (position) order.
  template <class Fn>
  void for_each_attended_slot(std::size_t r, Fn&& fn) const {
    const std::int32_t prefix = causal() ? slots[r] + 1 : attend_len[r];
    for (std::int32_t s = 0; s < prefix; ++s) fn(s);
    if (causal()) return;
    const std::int32_t* extra = extra_slots + r * static_cast<std::size_t>(extra_width);
    for (std::int32_t i = 0; i < extra_width; ++i) {
      if (extra[i] >= 0) fn(extra[i]);
    }
  }
};

// Float32 logits [rows, vocab], row-major and contiguous. By default in host memory (device kCPU);
// a runner on a GPU may return memory of CUDA device `device_index` instead, written by work queued on
// `stream` (a cudaStream_t as an integer, 0 = the legacy default stream): the engine then verifies and
// samples there, ordered after that stream (a build without CUDA kernels fails such a round). The
// engine reads the logits after forward() returns, possibly on another engine thread, and releases
// `owner` when done: make `owner` keep `data` alive (e.g. a std::shared_ptr<std::vector<float>>, or a
// handle that returns a pinned buffer to a pool). The runner must not write to the storage until
// `owner` is released; copies share it.
// The storage must be writable and the runner's alone (a fresh buffer per forward, never a view of
// weights, inputs or a buffer a later forward reuses while this one is held): for structured output
// (ssdcore/token_masker.h) the engine may overwrite entries of the returned rows with -inf in place,
// right after forward() returns and before the runner's next forward (CUDA logits: by a kernel queued
// on `stream`). Nothing else ever writes to them.
struct Logits {
  const float* data = nullptr;
  std::int64_t rows = 0;
  std::int64_t vocab = 0;
  std::shared_ptr<const void> owner;
  DeviceType device = DeviceType::kCPU;
  int device_index = 0;
  std::uintptr_t stream = 0;

  const float* row(std::int64_t r) const { return data + r * vocab; }
  bool same_device(const Logits& o) const { return device == o.device && device_index == o.device_index; }

  // Convenience: a zero-filled buffer of rows x vocab floats owned by the result; write it through
  // mutable_data() before returning it from forward().
  static Logits allocate(std::int64_t rows, std::int64_t vocab) {
    auto buffer = std::make_shared<std::vector<float>>(static_cast<std::size_t>(rows * vocab), 0.0f);
    Logits out;
    out.data = buffer->data();
    out.rows = rows;
    out.vocab = vocab;
    out.owner = buffer;
    return out;
  }
  // The storage as writable floats; only for buffers made by allocate() (the runner owns them until
  // it returns them).
  float* mutable_data() const { return const_cast<float*>(data); }
};

class ModelRunner {
 public:
  virtual ~ModelRunner() = default;
  // Width of every logits row (the model's vocabulary). Target and draft must agree. Must not change.
  virtual std::int64_t vocab_size() const = 0;
  // Called once, on the worker thread that will make every forward() call, before the first one
  // (set thread counts, pin cores, bind a GPU context, ...).
  virtual void on_worker_start() {}
  // Runs one batch (see the file comment). Throws on failure.
  virtual Logits forward(const ForwardBatch& batch) = 0;
};

}  // namespace ssdcore
