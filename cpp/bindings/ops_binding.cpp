// ops_binding.cpp: ssdcore._core.verify / sample_draft (and their CUDA workspace sizes), the low-level
// batched verification and draft sampling on DLPack tensors that ssdcore.ops wraps with full argument
// validation. Each runs where its logits are: the CPU reference (without the GIL), or the CUDA kernels
// on the given stream in a build that has them.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "bindings.h"
#include "capsule_views.h"
#include "draft_sampler.h"
#include "param_arrays.h"
#include "verifier.h"
#ifdef SSD_WITH_CUDA
#include "verify_kernels.h"
#endif

namespace ssd_bindings {
namespace {

using ssd::DeviceType;
using ssd::DType;
using ssd::TensorView;

void require_cuda_build() {
#ifndef SSD_WITH_CUDA
  throw std::runtime_error("ssdcore was built without CUDA kernels; pass CPU tensors");
#endif
}

#ifdef SSD_WITH_CUDA
// Checks the CUDA workspace (uint8, on `ref`'s device), then runs
// `launch(workspace, bytes, device, stream)` without the GIL; a non-empty message it returns is raised
// as RuntimeError.
template <class Launch>
void launch_on_cuda(const py::object& workspace, const TensorView& ref, uintptr_t stream, Launch launch) {
  const TensorView ws = expect(workspace, "workspace", DType::kUInt8, {-1}, DeviceType::kCUDA);
  ssd::check_same_device(ws, ref, "workspace");
  std::string err;
  {
    py::gil_scoped_release release;
    err = launch(ws.data, static_cast<size_t>(ws.numel()), ref.device_id, reinterpret_cast<cudaStream_t>(stream));
  }
  if (!err.empty()) throw std::runtime_error(err);
}
#endif

void py_verify(const py::object& target_logits, const py::object& draft_tokens, const py::object& draft_logits,
               const py::dict& seq_params, const py::object& saguaro_fanout, const py::object& accept_len,
               const py::object& next_token, const py::object& workspace, uintptr_t stream, int num_threads) {
  const TensorView tl = view_of(target_logits, "target_logits");
  const DeviceType dev = tl.device;
  if (dev == DeviceType::kOther) throw std::invalid_argument("target_logits: must be a CPU or CUDA tensor");
  expect(target_logits, "target_logits", DType::kFloat32, {-1, -1, -1}, dev);
  const int64_t B = tl.shape[0], K = tl.shape[1] - 1, V = tl.shape[2];
  if (K < 0 || V <= 0 || V > 0x7FFFFFFF) throw std::invalid_argument("target_logits: shape must be [B, K+1, V] with K+1 >= 1, V >= 1");
  const TensorView tok = expect(draft_tokens, "draft_tokens", DType::kInt64, {B, K}, dev);
  const TensorView dl = draft_logits.is_none() ? TensorView{}
                                               : expect(draft_logits, "draft_logits", DType::kFloat32, {B, K, V}, dev);
  const TensorView out_acc = expect(accept_len, "accept_len", DType::kInt64, {B}, dev);
  const TensorView out_next = expect(next_token, "next_token", DType::kInt64, {B}, dev);

  std::map<std::string, TensorView> store;
  std::vector<ssd::SeqVerifyParams> params = ssd::seq_verify_params(views_of(seq_params, store), B);
  const int32_t* fan =
      saguaro_fanout.is_none() ? nullptr : host_array<int32_t>(saguaro_fanout, "saguaro_fanout", DType::kInt32, {B, K});
  ssd::VerifyBatch vb;
  vb.batch = static_cast<int32_t>(B);
  vb.k = static_cast<int32_t>(K);
  vb.vocab = static_cast<int32_t>(V);
  vb.target_logits = tl.ptr<float>();
  vb.draft_tokens = tok.ptr<int64_t>();
  std::vector<const float*> rows;  // proposal b * K + i reads row (b, i) of the dense draft_logits
  for (int64_t r = 0; !draft_logits.is_none() && r < B * K; ++r) rows.push_back(dl.ptr<float>() + r * V);
  vb.draft_rows = rows.empty() ? nullptr : rows.data();
  vb.saguaro_fanout = fan;
  vb.params = params.data();
  ssd::check_verify_params(vb);
  const ssd::VerifyResult res{out_acc.ptr<int64_t>(), out_next.ptr<int64_t>()};
  if (dev == DeviceType::kCPU) {
    py::gil_scoped_release release;
    ssd::verify_cpu(vb, res, num_threads);
    return;
  }
  require_cuda_build();
#ifdef SSD_WITH_CUDA
  if (!draft_logits.is_none()) ssd::check_same_device(dl, tl, "draft_logits");
  ssd::check_same_device(tok, tl, "draft_tokens");
  ssd::check_same_device(out_acc, tl, "accept_len");
  ssd::check_same_device(out_next, tl, "next_token");
  launch_on_cuda(workspace, tl, stream, [&](void* ws, size_t bytes, int device, cudaStream_t s) {
    return ssd::launch_verify(vb, res, ws, bytes, device, s);
  });
#else
  (void)workspace;
  (void)stream;
#endif
}

void py_sample_draft(const py::object& logits, const py::dict& row_params, const py::object& tokens,
                     const py::object& probs, const py::object& workspace, uintptr_t stream, int num_threads) {
  const TensorView lv = view_of(logits, "logits");
  const DeviceType dev = lv.device;
  if (dev == DeviceType::kOther) throw std::invalid_argument("logits: must be a CPU or CUDA tensor");
  expect(logits, "logits", DType::kFloat32, {-1, -1}, dev);
  const int64_t N = lv.shape[0], V = lv.shape[1];
  if (V <= 0 || V > 0x7FFFFFFF) throw std::invalid_argument("logits: shape must be [N, V] with V >= 1");
  const TensorView out_tok = expect(tokens, "tokens", DType::kInt64, {N}, dev);
  const TensorView out_probs = probs.is_none() ? TensorView{} : expect(probs, "probs", DType::kFloat32, {N, V}, dev);
  std::map<std::string, TensorView> store;
  std::vector<ssd::DraftRowParams> params = ssd::draft_row_params(views_of(row_params, store), N);
  ssd::DraftBatch batch{static_cast<int32_t>(N), static_cast<int32_t>(V), lv.ptr<float>(), params.data()};
  ssd::check_draft_params(batch);
  const ssd::DraftResult res{out_tok.ptr<int64_t>(), probs.is_none() ? nullptr : out_probs.ptr<float>()};
  if (dev == DeviceType::kCPU) {
    py::gil_scoped_release release;
    ssd::sample_draft_cpu(batch, res, num_threads);
    return;
  }
  require_cuda_build();
#ifdef SSD_WITH_CUDA
  ssd::check_same_device(out_tok, lv, "tokens");
  if (!probs.is_none()) ssd::check_same_device(out_probs, lv, "probs");
  launch_on_cuda(workspace, lv, stream, [&](void* ws, size_t bytes, int device, cudaStream_t s) {
    return ssd::launch_sample_draft(batch, res, ws, bytes, device, s);
  });
#else
  (void)workspace;
  (void)stream;
#endif
}

size_t verify_workspace_bytes(int64_t batch, int64_t k) {
#ifdef SSD_WITH_CUDA
  return ssd::verify_workspace_bytes(static_cast<int32_t>(batch), static_cast<int32_t>(k));
#else
  (void)batch;
  (void)k;
  return 0;
#endif
}

size_t draft_workspace_bytes(int64_t rows) {
#ifdef SSD_WITH_CUDA
  return ssd::draft_workspace_bytes(static_cast<int32_t>(rows));
#else
  (void)rows;
  return 0;
#endif
}

}  // namespace

void bind_ops(py::module_& m) {
  m.def("verify", &py_verify,
        "Low-level batched verification on DLPack capsules; use ssdcore.ops.verify. seq_params maps draft_len, "
        "onehot, temperature, top_k, top_p, draft_temperature, draft_top_k, draft_top_p, saguaro_c, seed, "
        "position to host tensors of length B. Writes accept_len and next_token in place.",
        py::arg("target_logits"), py::arg("draft_tokens"), py::arg("draft_logits"), py::arg("seq_params"),
        py::arg("saguaro_fanout"), py::arg("accept_len"), py::arg("next_token"), py::arg("workspace"),
        py::arg("stream"), py::arg("num_threads"));
  m.def("sample_draft", &py_sample_draft,
        "Low-level draft sampler on DLPack capsules; use ssdcore.ops.sample_draft. row_params maps temperature, "
        "top_k, top_p, saguaro_c, saguaro_fanout, seed, position to host tensors of length N. Writes tokens "
        "(and probs) in place.",
        py::arg("logits"), py::arg("row_params"), py::arg("tokens"), py::arg("probs"), py::arg("workspace"),
        py::arg("stream"), py::arg("num_threads"));
  m.def("verify_workspace_bytes", &verify_workspace_bytes, py::arg("batch"), py::arg("k"),
        "Device workspace bytes ssdcore.ops.verify needs on a GPU (0 in a CPU-only build).");
  m.def("draft_workspace_bytes", &draft_workspace_bytes, py::arg("rows"),
        "Device workspace bytes ssdcore.ops.sample_draft needs on a GPU (0 in a CPU-only build).");
}

}  // namespace ssd_bindings
