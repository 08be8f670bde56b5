// cpu_model.h: the whole forward of a Llama-family decoder (Llama, Mistral, Qwen2, Qwen3) over flattened
// rows, float32, on the calling CPU thread, with no Python and no torch. python/ssdcore/models/
// cpu_model.py wraps it for CausalLM, which uses it for CPU float32 models run with one torch thread
// (the engine's one-core-per-model setting) and keeps its torch path for everything else.
//
// Why: a torch forward of a small model is hundreds of small ops, each a Python call that also takes the
// GIL, so a draft and a target forwarding at the same time slow each other down, and per-op overhead is
// a large share of a decode. Here one call does the whole forward with the GIL released.
//
// What it computes is CausalLM._run: embedding, per layer RMSNorm -> fused QKV (+bias) -> optional
// per-head q/k RMSNorm -> RoPE (tables from the caller) -> K/V written to the cache -> attention
// (cpu_attention.h) -> o_proj -> residual -> RMSNorm -> gate/up -> SiLU(gate) * up -> down -> residual;
// final RMSNorm on the requested rows and the lm_head's first `lm_rows` rows.
//
// Invariants: every row's logits depend only on that row's token, position and the cache it sees (all
// products go through cpu_linear, all reductions are per row), so a token's logits are bitwise equal in a
// decode, a verification and a tree step. The matrices are copied into PackedWeights (packed_linear.h,
// bfloat16 when the values allow); the norms, biases and embedding are borrowed: the owner (the Python
// model) keeps them alive and in place for the CpuModel's lifetime. forward() is const and reentrant for distinct caches;
// one thread per cache at a time. Given a ThreadTeam, a forward splits each weight product by blocks of
// output columns and attention by (row, kv head) over the team's threads; every output is computed by
// the same code whatever the split, so the logits are bitwise those of one thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cpu_attention.h"
#include "packed_linear.h"
#include "tensor_view.h"
#include "thread_team.h"

namespace ssd {

struct CpuModelShape {
  int64_t vocab = 0, hidden = 0, intermediate = 0, layers = 0, heads = 0, kv_heads = 0, head_dim = 0;
  float eps = 1e-6f;
  bool qkv_bias = false, o_bias = false, mlp_bias = false, qk_norm = false;
  std::vector<int64_t> windows;  // per layer; 0 = full attention
};

struct CpuRope {
  const float* cos = nullptr;         // [capacity, head_dim]
  const float* sin_signed = nullptr;  // [capacity, head_dim], first half negated (rope.py)
  int64_t capacity = 0;
};

struct CpuLogits {
  const int64_t* rows = nullptr;  // which rows get logits (n_out entries), nullptr = all rows in order
  int64_t n_out = 0;
  int64_t lm_rows = 0;  // lm_head rows (vocab columns) to compute
  float* out = nullptr;  // [n_out, out_stride]; columns [0, lm_rows) written
  int64_t out_stride = 0;
};

class CpuModel {
 public:
  // Weights by name: embed, norm, lm_head, and per layer i "L{i}.ln1", ln2, qkv_w, o_w, gate_up_w, down_w
  // (+ qkv_b, o_b, gate_up_b, down_b, qk_norm_w when the shape says so). Throws std::invalid_argument
  // naming any missing or mis-shaped weight.
  CpuModel(const CpuModelShape& shape, const ArrayLookup& weights);

  // Runs `rows` (validated against the shape, cache and rope: std::invalid_argument otherwise) on the
  // calling thread, or split over `team` (its caller's thread included) when given. `logits` says
  // which rows get logits and where; the batch's out_index / out_rows are not read.
  void forward(const ForwardBatch& rows, const CpuKvCache& kv, const CpuRope& rope, const CpuLogits& logits,
               ThreadTeam* team = nullptr) const;

  // The same from named arrays (cpp/bindings/' dict; a missing optional array is an empty view):
  // int32 [n] tokens, positions, lanes, slots, optional attend_len [n], extra_slots [n, E] (the
  // ForwardBatch's arrays); int64 logits_rows [n_out]; float32 kv [layers, 2, lanes, kv_heads, slots, head_dim], optional int64 slot_pos
  // [lanes, slots]; float32 rope_cos, rope_sin [capacity, head_dim]; float32 logits [n_out, >= lm_rows].
  void forward(const ArrayLookup& arrays, int64_t lm_rows, ThreadTeam* team = nullptr) const;

  // The cache (kv, optional slot_pos) and RoPE tables (rope_cos, rope_sin) of such arrays, checked
  // against the model's shape.
  CpuKvCache kv_from(const ArrayLookup& arrays) const;
  CpuRope rope_from(const ArrayLookup& arrays) const;

  const CpuModelShape& shape() const { return shape_; }

 private:
  struct Layer {
    const float *ln1, *ln2;
    PackedWeights qkv_w;
    const float* qkv_b;
    PackedWeights o_w;
    const float* o_b;
    PackedWeights gate_up_w;
    const float* gate_up_b;
    PackedWeights down_w;
    const float *down_b, *qk_norm_w;
  };
  void check(const ForwardBatch& rows, const CpuKvCache& kv, const CpuRope& rope, const CpuLogits& logits) const;
  void layer_forward(int64_t i, const ForwardBatch& rows, const CpuKvCache& kv, const CpuRope& rope, float* x,
                     ThreadTeam* team) const;
  CpuModelShape shape_;
  const float *embed_ = nullptr, *norm_ = nullptr;
  PackedWeights lm_head_;
  std::vector<Layer> layers_;
};

}  // namespace ssd
