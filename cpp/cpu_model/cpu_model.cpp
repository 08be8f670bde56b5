// cpu_model.cpp: see cpu_model.h.
#include "cpu_model.h"

#include <cmath>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>

namespace ssd {
namespace {

[[noreturn]] void fail(const std::string& what) { throw std::invalid_argument("CpuModel: " + what); }

const float* weight(const ArrayLookup& get, const std::string& name, std::vector<int64_t> shape) {
  const TensorView v = get(name);
  expect_view(v, name, DType::kFloat32, shape, DeviceType::kCPU);
  return v.ptr<float>();
}

// out[r] = w * (x[r] / sqrt(mean(x[r]^2) + eps)), HF's float32 RMSNorm; n rows of `width`, strides given.
void rms_norm(const float* x, int64_t x_stride, int64_t n, int64_t width, const float* w, float eps, float* out,
              int64_t out_stride) {
  for (int64_t r = 0; r < n; ++r) {
    const float* xr = x + r * x_stride;
    float sum = 0.f;
    for (int64_t i = 0; i < width; ++i) sum += xr[i] * xr[i];
    const float inv = 1.f / std::sqrt(sum / static_cast<float>(width) + eps);
    float* o = out + r * out_stride;
    for (int64_t i = 0; i < width; ++i) o[i] = w[i] * (xr[i] * inv);
  }
}

PackedWeights matrix(const ArrayLookup& get, const std::string& name, int64_t rows, int64_t cols,
                     const std::shared_ptr<WeightArena>& arena) {
  return PackedWeights(weight(get, name, {rows, cols}), rows, cols, arena);
}

// y[m, :outputs] = x[m, cols(w)] W^T + bias (outputs < 0: all rows of w; y's row stride y_stride, 0 =
// rows(w)), split by blocks of output columns over `team` when there is one.
void linear(const float* x, int64_t m, const PackedWeights& w, const float* bias, float* y, ThreadTeam* team,
            int64_t x_stride = 0, int64_t outputs = -1, int64_t y_stride = 0) {
  x_stride = x_stride ? x_stride : w.cols();
  y_stride = y_stride ? y_stride : w.rows();
  const int64_t blocks = w.blocks(outputs);
  if (team == nullptr || team->size() == 1 || blocks < 2) {
    w.apply(x, m, x_stride, bias, y, y_stride, outputs);
    return;
  }
  team->run([&](int part) {
    int64_t b0, b1;
    ThreadTeam::split(blocks, team->size(), part, &b0, &b1);
    w.apply_blocks(x, m, x_stride, bias, y, y_stride, outputs, b0, b1);
  });
}

// cpu_attention over every (row, kv head) item, split over `team` when there is one.
void attention(const ForwardBatch& rows, const CpuKvCache& kv, int64_t layer, int64_t heads, int64_t window,
               const float* q, int64_t q_stride, float* out, ThreadTeam* team) {
  const int64_t items = static_cast<int64_t>(rows.rows) * kv.kv_heads;
  if (team == nullptr || team->size() == 1 || items < 2) {
    cpu_attention(rows, kv, layer, heads, window, q, q_stride, out);
    return;
  }
  team->run([&](int part) {
    int64_t i0, i1;
    ThreadTeam::split(items, team->size(), part, &i0, &i1);
    if (i0 < i1) cpu_attention(rows, kv, layer, heads, window, q, q_stride, out, i0, i1);
  });
}

// x[h] = x[h] * cos + roll(x[h], dim / 2) * sin_signed for `count` heads of one row (rope.py's form).
void rope(float* x, int64_t count, int64_t dim, const float* cos, const float* sin) {
  const int64_t half = dim / 2;
  float tmp[512];
  for (int64_t h = 0; h < count; ++h) {
    float* v = x + h * dim;
    std::memcpy(tmp, v, sizeof(float) * dim);
    for (int64_t d = 0; d < dim; ++d) v[d] = tmp[d] * cos[d] + tmp[(d + half) % dim] * sin[d];
  }
}

}  // namespace

CpuModel::CpuModel(const CpuModelShape& s, const ArrayLookup& get) : shape_(s) {
  if (s.vocab < 1 || s.hidden < 1 || s.intermediate < 1 || s.layers < 1 || s.heads < 1 || s.kv_heads < 1 ||
      s.head_dim < 2 || s.head_dim % 2 || s.head_dim > 512 || s.heads % s.kv_heads)
    fail("unsupported shape (head_dim must be even and <= 512, heads a multiple of kv_heads)");
  if (static_cast<int64_t>(s.windows.size()) != s.layers)
    fail("windows has " + std::to_string(s.windows.size()) + " entries, expected one per layer (" +
         std::to_string(s.layers) + ")");
  const int64_t H = s.hidden, D = s.head_dim, I = s.intermediate, qkv = (s.heads + 2 * s.kv_heads) * D;
  embed_ = weight(get, "embed", {s.vocab, H});
  norm_ = weight(get, "norm", {H});
  const auto arena = std::make_shared<WeightArena>();  // packed in the order a forward reads them
  for (int64_t i = 0; i < s.layers; ++i) {
    const std::string p = "L" + std::to_string(i) + ".";
    const auto opt = [&](bool on, const std::string& n, std::vector<int64_t> shape) {
      return on ? weight(get, p + n, std::move(shape)) : nullptr;
    };
    layers_.push_back(Layer{weight(get, p + "ln1", {H}), weight(get, p + "ln2", {H}),
                            matrix(get, p + "qkv_w", qkv, H, arena), opt(s.qkv_bias, "qkv_b", {qkv}),
                            matrix(get, p + "o_w", H, s.heads * D, arena), opt(s.o_bias, "o_b", {H}),
                            matrix(get, p + "gate_up_w", 2 * I, H, arena), opt(s.mlp_bias, "gate_up_b", {2 * I}),
                            matrix(get, p + "down_w", H, I, arena), opt(s.mlp_bias, "down_b", {H}),
                            opt(s.qk_norm, "qk_norm_w", {s.heads + s.kv_heads, D})});
  }
  lm_head_ = matrix(get, "lm_head", s.vocab, H, arena);
}

void CpuModel::check(const ForwardBatch& rows, const CpuKvCache& kv, const CpuRope& rope, const CpuLogits& lg) const {
  const CpuModelShape& s = shape_;
  if (kv.layers != s.layers || kv.kv_heads != s.kv_heads || kv.head_dim != s.head_dim || !kv.buffer)
    fail("KV cache does not match the model (layers, kv_heads, head_dim)");
  if (lg.lm_rows < 1 || lg.lm_rows > s.vocab) fail("lm_rows = " + std::to_string(lg.lm_rows) + " not in [1, vocab]");
  const auto in = [](const auto* a, int64_t r, int64_t lo, int64_t hi, const char* name) {
    if (a[r] < lo || a[r] >= hi)
      fail(std::string(name) + "[" + std::to_string(r) + "] = " + std::to_string(a[r]) + " is out of range: allowed [" +
           std::to_string(lo) + ", " + std::to_string(hi) + ")");
  };
  const int64_t n = static_cast<int64_t>(rows.rows);
  for (int64_t r = 0; r < n; ++r) {
    in(rows.tokens, r, 0, s.vocab, "tokens");
    in(rows.positions, r, 0, rope.capacity, "positions");
    in(rows.lanes, r, 0, kv.lanes, "lanes");
    in(rows.slots, r, 0, kv.max_slots, "slots");
    if (rows.attend_len) in(rows.attend_len, r, 0, kv.max_slots + 1, "attend_len");
    for (int64_t e = 0; rows.extra_slots && e < rows.extra_width; ++e)
      in(rows.extra_slots, r * rows.extra_width + e, -1, kv.max_slots, "extra_slots");
  }
  if (!lg.out || lg.n_out < 0 || lg.out_stride < lg.lm_rows || (!lg.rows && lg.n_out != n))
    fail("logits output does not match the rows and lm_rows");
  for (int64_t j = 0; lg.rows && j < lg.n_out; ++j) in(lg.rows, j, 0, n, "logits_rows");
}

void CpuModel::layer_forward(int64_t i, const ForwardBatch& rows, const CpuKvCache& kv, const CpuRope& rp,
                             float* x, ThreadTeam* team) const {
  const CpuModelShape& s = shape_;
  const Layer& L = layers_[i];
  const int64_t n = static_cast<int64_t>(rows.rows), H = s.hidden, D = s.head_dim, I = s.intermediate;
  const int64_t qk_heads = s.heads + s.kv_heads, qkv = (qk_heads + s.kv_heads) * D;
  std::vector<float> h(n * H), qkv_out(n * qkv), att(n * s.heads * D), gu(n * 2 * I);
  rms_norm(x, H, n, H, L.ln1, s.eps, h.data(), H);
  linear(h.data(), n, L.qkv_w, L.qkv_b, qkv_out.data(), team);
  for (int64_t r = 0; r < n; ++r) {
    float* row = qkv_out.data() + r * qkv;
    if (L.qk_norm_w)
      for (int64_t hd = 0; hd < qk_heads; ++hd)
        rms_norm(row + hd * D, D, 1, D, L.qk_norm_w + hd * D, s.eps, row + hd * D, D);
    const int64_t pos = rows.positions[r];
    rope(row, qk_heads, D, rp.cos + pos * D, rp.sin_signed + pos * D);
    for (int64_t g = 0; g < s.kv_heads; ++g) {
      const int64_t at = rows.slots[r] * D;
      std::memcpy(kv.keys(i, rows.lanes[r], g) + at, row + (s.heads + g) * D, sizeof(float) * D);
      std::memcpy(kv.values(i, rows.lanes[r], g) + at, row + (qk_heads + g) * D, sizeof(float) * D);
    }
  }
  attention(rows, kv, i, s.heads, s.windows[i], qkv_out.data(), qkv, att.data(), team);
  linear(att.data(), n, L.o_w, L.o_b, h.data(), team);
  for (int64_t j = 0; j < n * H; ++j) x[j] += h[j];
  rms_norm(x, H, n, H, L.ln2, s.eps, h.data(), H);
  linear(h.data(), n, L.gate_up_w, L.gate_up_b, gu.data(), team);
  for (int64_t r = 0; r < n; ++r) {  // act[r] = silu(gate) * up, written over the gate half
    float* g = gu.data() + r * 2 * I;
    for (int64_t j = 0; j < I; ++j) g[j] = g[j] / (1.f + std::exp(-g[j])) * g[I + j];
  }
  linear(gu.data(), n, L.down_w, L.down_b, h.data(), team, 2 * I);
  for (int64_t j = 0; j < n * H; ++j) x[j] += h[j];
}

void CpuModel::forward(const ForwardBatch& rows, const CpuKvCache& kv, const CpuRope& rope, const CpuLogits& lg,
                       ThreadTeam* team) const {
  check(rows, kv, rope, lg);
  const int64_t n = static_cast<int64_t>(rows.rows), H = shape_.hidden;
  if (kv.slot_pos)
    for (int64_t r = 0; r < n; ++r) kv.slot_pos[rows.lanes[r] * kv.max_slots + rows.slots[r]] = rows.positions[r];
  std::vector<float> x(n * H);
  for (int64_t r = 0; r < n; ++r) std::memcpy(x.data() + r * H, embed_ + rows.tokens[r] * H, sizeof(float) * H);
  for (int64_t i = 0; i < shape_.layers; ++i) layer_forward(i, rows, kv, rope, x.data(), team);
  std::vector<float> h(lg.n_out * H);
  for (int64_t j = 0; j < lg.n_out; ++j) {
    const int64_t r = lg.rows ? lg.rows[j] : j;
    rms_norm(x.data() + r * H, H, 1, H, norm_, shape_.eps, h.data() + j * H, H);
  }
  linear(h.data(), lg.n_out, lm_head_, nullptr, lg.out, team, H, lg.lm_rows, lg.out_stride);
}

void CpuModel::forward(const ArrayLookup& get, int64_t lm_rows, ThreadTeam* team) const {
  const auto index = [&get](const char* name, std::vector<int64_t> shape, bool optional) -> const int32_t* {
    const TensorView v = get(name);
    if (!v.data && optional) return nullptr;
    expect_view(v, name, DType::kInt32, shape, DeviceType::kCPU);
    return v.ptr<int32_t>();
  };
  ForwardBatch rows;
  const TensorView tok = get("tokens");
  expect_view(tok, "tokens", DType::kInt32, {-1}, DeviceType::kCPU);
  const int64_t n = tok.shape[0];
  rows.rows = static_cast<size_t>(n);
  rows.tokens = tok.ptr<int32_t>();
  rows.positions = index("positions", {n}, false);
  rows.lanes = index("lanes", {n}, false);
  rows.slots = index("slots", {n}, false);
  rows.attend_len = index("attend_len", {n}, true);
  const TensorView extra = get("extra_slots");
  rows.extra_slots = index("extra_slots", {n, -1}, true);
  rows.extra_width = rows.extra_slots ? static_cast<int32_t>(extra.shape[1]) : 0;
  const TensorView out = get("logits");
  expect_view(out, "logits", DType::kFloat32, {-1, -1}, DeviceType::kCPU);
  const TensorView sel_view = get("logits_rows");
  const int64_t* sel = nullptr;
  if (sel_view.data) {
    expect_view(sel_view, "logits_rows", DType::kInt64, {out.shape[0]}, DeviceType::kCPU);
    sel = sel_view.ptr<int64_t>();
  }
  const CpuLogits lg{sel, out.shape[0], lm_rows, out.ptr<float>(), out.shape[1]};
  forward(rows, kv_from(get), rope_from(get), lg, team);
}

CpuKvCache CpuModel::kv_from(const ArrayLookup& get) const {
  const TensorView kvv = get("kv"), pos = get("slot_pos");
  const int64_t D = shape_.head_dim;
  expect_view(kvv, "kv", DType::kFloat32, {shape_.layers, 2, -1, shape_.kv_heads, -1, D}, DeviceType::kCPU);
  CpuKvCache kv{kvv.ptr<float>(), shape_.layers, kvv.shape[2], shape_.kv_heads, kvv.shape[4], D, nullptr};
  if (pos.data) {
    expect_view(pos, "slot_pos", DType::kInt64, {kv.lanes, kv.max_slots}, DeviceType::kCPU);
    kv.slot_pos = pos.ptr<int64_t>();
  }
  return kv;
}

CpuRope CpuModel::rope_from(const ArrayLookup& get) const {
  const TensorView cos = get("rope_cos"), sin = get("rope_sin");
  expect_view(cos, "rope_cos", DType::kFloat32, {-1, shape_.head_dim}, DeviceType::kCPU);
  expect_view(sin, "rope_sin", DType::kFloat32, {cos.shape[0], shape_.head_dim}, DeviceType::kCPU);
  return CpuRope{cos.ptr<float>(), sin.ptr<float>(), cos.shape[0]};
}

}  // namespace ssd
