// cpu_attention.h: attention of flattened rows over the lane/slot KV cache, one row at a time, float32,
// on the calling CPU thread. Part of CpuModel (cpu_model.h); the torch path does the same in
// python/ssdcore/models/attention.py.
//
// KV layout (python/ssdcore/models/kv_cache.py): buffer[layer][K=0|V=1][lane][kv_head][slot][head_dim],
// so one lane's slots for one kv head are contiguous rows of head_dim floats.
//
// Rows are the engine's ForwardBatch (ssdcore/model_runner.h). Visibility of row r in lane l (the
// contract of CausalLM.forward_rows): with attend_len given, slots [0, attend_len[r]) plus
// extra_slots[r][*] (-1 = padding) plus its own slot; otherwise slots [0, slots[r]].
// Sliding-window layers additionally drop keys whose logical position p_k has p_q - p_k >= window
// (p_k from slot_pos when the model has windows, else the slot itself).
//
// Invariant: a row's output depends only on its own query and the cache contents it sees, never on the
// other rows of the call (batch invariance). Grouped-query heads share their kv head's scores pass.
// Reentrant: no state; scratch comes from the caller.
#pragma once

#include <cstdint>
#include <vector>

#include "ssdcore/model_runner.h"

namespace ssd {

struct CpuKvCache {
  float* buffer = nullptr;  // [layers, 2, lanes, kv_heads, max_slots, head_dim]
  int64_t layers = 0, lanes = 0, kv_heads = 0, max_slots = 0, head_dim = 0;
  int64_t* slot_pos = nullptr;  // [lanes, max_slots] logical position per slot, or nullptr (no windows)

  float* keys(int64_t layer, int64_t lane, int64_t head) const { return at(layer, 0, lane, head); }
  float* values(int64_t layer, int64_t lane, int64_t head) const { return at(layer, 1, lane, head); }

 private:
  float* at(int64_t layer, int64_t kv, int64_t lane, int64_t head) const {
    return buffer + (((layer * 2 + kv) * lanes + lane) * kv_heads + head) * max_slots * head_dim;
  }
};

using ssdcore::ForwardBatch;

// Slots row r may see, in ascending order of first appearance: [0, prefix) then `more` (deduplicated).
struct RowKeys {
  int64_t prefix = 0;
  std::vector<int64_t> more;
};
RowKeys visible_keys(const ForwardBatch& rows, int64_t r);

// out[n, heads * head_dim] = attention of q[n, heads * head_dim] (row stride q_stride, RoPE applied)
// over `layer` of the cache (whose K/V for these rows are already written). window 0 = none.
// Work items are (row r, kv head g) = r * kv_heads + g; only items [item_begin, item_end) are computed
// (item_end < 0: all), so threads can split a call (each item writes its own heads of its own row).
void cpu_attention(const ForwardBatch& rows, const CpuKvCache& kv, int64_t layer, int64_t heads, int64_t window,
                   const float* q, int64_t q_stride, float* out, int64_t item_begin = 0, int64_t item_end = -1);

}  // namespace ssd
