// bindings.cpp: the pybind11 module ssdcore._core, the only file that includes pybind11.
//
// Tensors cross the boundary as DLPack capsules (see tensor_view.h for the runtime's view of them);
// every function that blocks or does heavy work releases the GIL. Errors in argument values are
// raised as ValueError by the Python layer before they reach here; what reaches here and is still
// wrong raises ValueError (std::invalid_argument) too.
//
// Capsules are borrowed, not consumed: the caller's argument keeps the producer's tensor alive for the
// duration of the call, and the capsule's own destructor releases it afterwards. Only "dltensor" and
// "dltensor_versioned" (major version 1) capsules are accepted.
#include <pybind11/pybind11.h>
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <cstring>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "cpu_model.h"
#include "cpu_model_runner.h"
#include "device_info.h"
#include "engine.h"
#include "public_api.h"
#include "dlpack_view.h"
#include "param_arrays.h"
#include "draft_sampler.h"
#include "tensor_view.h"
#include "verifier.h"
#ifdef SSD_WITH_CUDA
#include "verify_kernels.h"
#endif

namespace py = pybind11;

namespace {

using ssd::DeviceType;
using ssd::DType;
using ssd::TensorView;
using ssd::view_of_dltensor;

TensorView view_of(const py::object& obj, const std::string& name) {
  PyObject* p = obj.ptr();
  if (!PyCapsule_CheckExact(p)) throw std::invalid_argument(name + ": expected a DLPack capsule");
  const char* cname = PyCapsule_GetName(p);
  if (cname && std::strcmp(cname, "dltensor") == 0) {
    auto* mt = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(p, "dltensor"));
    return view_of_dltensor(mt->dl_tensor);
  }
  if (cname && std::strcmp(cname, "dltensor_versioned") == 0) {
    auto* mt = static_cast<DLManagedTensorVersioned*>(PyCapsule_GetPointer(p, "dltensor_versioned"));
    if (mt->version.major != DLPACK_MAJOR_VERSION)
      throw std::invalid_argument(name + ": unsupported DLPack major version " + std::to_string(mt->version.major));
    return view_of_dltensor(mt->dl_tensor);
  }
  throw std::invalid_argument(name + ": not an unconsumed DLPack capsule");
}

// A contiguous tensor of the given dtype and shape (-1 = any) on `device`.
TensorView expect(const py::object& obj, const std::string& name, DType dtype, std::vector<int64_t> shape,
                  DeviceType device) {
  TensorView v = view_of(obj, name);
  ssd::expect_view(v, name, dtype, shape, device);
  return v;
}

template <class T>
const T* host_array(const py::object& obj, const std::string& name, DType dtype, std::vector<int64_t> shape) {
  return expect(obj, name, dtype, std::move(shape), DeviceType::kCPU).ptr<T>();
}

void require_cuda_build() {
#ifndef SSD_WITH_CUDA
  throw std::runtime_error("ssdcore was built without CUDA kernels; pass CPU tensors");
#endif
}

// Every array of a dict of DLPack capsules (parameter arrays, weights, rows) as a view, None as an empty
// view, kept in `store`; then a lookup over them that needs no GIL.
ssd::ArrayLookup views_of(const py::dict& arrays, std::map<std::string, TensorView>& store) {
  for (const auto& item : arrays) {
    const std::string name = py::cast<std::string>(item.first);
    store[name] = item.second.is_none() ? TensorView{} : view_of(py::reinterpret_borrow<py::object>(item.second), name);
  }
  return [&store](const std::string& name) {
    const auto it = store.find(name);
    if (it == store.end()) throw std::invalid_argument("missing array " + name);
    return it->second;
  };
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

void bind_cpu_model(py::module_& m) {
  py::class_<ssd::CpuModel, std::shared_ptr<ssd::CpuModel>>(m, "CpuModel",
                                                           "Native float32 CPU forward; see ssdcore.models.cpu_model.")
      .def(py::init([](const py::dict& shape, const py::dict& weights) {
             ssd::CpuModelShape s;
             const auto i64 = [&shape](const char* k) { return py::cast<int64_t>(shape[k]); };
             s.vocab = i64("vocab"), s.hidden = i64("hidden"), s.intermediate = i64("intermediate");
             s.layers = i64("layers"), s.heads = i64("heads"), s.kv_heads = i64("kv_heads");
             s.head_dim = i64("head_dim"), s.eps = py::cast<float>(shape["eps"]);
             s.qkv_bias = py::cast<bool>(shape["qkv_bias"]), s.o_bias = py::cast<bool>(shape["o_bias"]);
             s.mlp_bias = py::cast<bool>(shape["mlp_bias"]), s.qk_norm = py::cast<bool>(shape["qk_norm"]);
             s.windows = py::cast<std::vector<int64_t>>(shape["windows"]);
             std::map<std::string, TensorView> store;
             return std::make_shared<ssd::CpuModel>(s, views_of(weights, store));
           }),
           py::arg("shape"), py::arg("weights"))
      .def(
          "forward",
          [](const ssd::CpuModel& self, const py::dict& arrays, int64_t lm_rows, ssd::ThreadTeam* team) {
            std::map<std::string, TensorView> store;
            const ssd::ArrayLookup get = views_of(arrays, store);
            py::gil_scoped_release release;
            self.forward(get, lm_rows, team);
          },
          py::arg("arrays"), py::arg("lm_rows"), py::arg("team") = nullptr,
          "Runs one forward (split over `team`'s threads when given); writes arrays['logits'] in place.");
  py::class_<ssd::ThreadTeam>(m, "ThreadTeam", "Threads a native forward splits its work over (thread_team.h).")
      .def(py::init<int>(), py::arg("threads"))
      .def_property_readonly("size", &ssd::ThreadTeam::size);
  py::class_<ssd::CpuModelRunner, std::shared_ptr<ssd::CpuModelRunner>>(
      m, "CpuModelRunner", "An engine model runner that runs a CpuModel without Python; see ssdcore.model_runner.")
      .def(py::init([](std::shared_ptr<ssd::CpuModel> model, const py::dict& arrays, int64_t vocab, int64_t lm_rows,
                       std::vector<int> cores, int threads) {
             std::map<std::string, TensorView> store;
             const ssd::ArrayLookup get = views_of(arrays, store);
             return std::make_shared<ssd::CpuModelRunner>(model, model->kv_from(get), model->rope_from(get), vocab,
                                                          lm_rows, std::move(cores), threads);
           }),
           py::arg("model"), py::arg("arrays"), py::arg("vocab"), py::arg("lm_rows"), py::arg("cores"),
           py::arg("threads") = 1)
      .def_property_readonly("threads", &ssd::CpuModelRunner::threads)
      .def_property_readonly("forward_calls", &ssd::CpuModelRunner::forward_calls);
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

// ---- the engine ------------------------------------------------------------------------------
namespace {

using ssd::EngineConfig;
using ssd::SamplingParams;

// Wraps a Python runner object (ssdcore.model_runner.ModelRunner) as a C++ ModelRunner: the one
// narrow callback through which worker threads reach Python. It takes the GIL for the call only.
class PyModelRunner final : public ssd::ModelRunner {
 public:
  PyModelRunner(py::object runner, std::string side) : runner_(std::move(runner)), side_(std::move(side)) {
    vocab_ = runner_.attr("vocab_size")().cast<int64_t>();
  }
  ~PyModelRunner() override {
    py::gil_scoped_acquire gil;
    runner_ = py::object();
  }
  int64_t vocab_size() const override { return vocab_; }
  void on_worker_start() override {
    py::gil_scoped_acquire gil;
    call([&] { runner_.attr("on_worker_start")(); });
  }
  ssd::Logits forward(const ssd::ForwardRequest& r) override {
    py::gil_scoped_acquire gil;
    ssd::Logits out;
    call([&] {
      py::object none = py::none();
      py::object attend = r.attend_len.empty() ? none : py::object(array(r.attend_len));
      py::object extra = none;
      if (!r.attend_len.empty()) {
        extra = py::array_t<int32_t>({static_cast<py::ssize_t>(r.rows()), static_cast<py::ssize_t>(r.extra_width)},
                                     r.extra_slots.data());
      }
      py::object t = runner_.attr("forward")(array(r.tokens), array(r.positions), array(r.lanes),
                                             array(r.slots), attend, extra, array(r.out_index), r.out_rows);
      out = to_logits(t, r.out_rows);
    });
    return out;
  }

 private:
  static py::array_t<int32_t> array(const std::vector<int32_t>& v) {
    return py::array_t<int32_t>(static_cast<py::ssize_t>(v.size()), v.data());
  }
  // Zero-copy view of the returned tensor through DLPack; the owner keeps the tensor alive and
  // releases it under the GIL from whichever thread drops the last reference. A CUDA tensor stays on
  // its device: the Logits name the device and torch's current stream there (where the runner's
  // forward was queued), and verification / draft sampling run on that stream (logits_ops.h).
  ssd::Logits to_logits(py::object tensor, int32_t out_rows) const {
    py::object capsule = tensor.attr("__dlpack__")();
    TensorView v = view_of(capsule, side_ + " logits");
    const bool on_device = v.device == DeviceType::kCPU || v.device == DeviceType::kCUDA;
    if (v.dtype != DType::kFloat32 || v.ndim() != 2 || !v.contiguous() || !on_device || v.shape[0] != out_rows ||
        v.shape[1] != vocab_) {
      throw std::runtime_error("forward returned " + std::string(ssd::dtype_name(v.dtype)) + " " + ssd::shape_string(v.shape) +
                               "; expected contiguous float32 CPU or CUDA [" + std::to_string(out_rows) + ", " +
                               std::to_string(vocab_) + "]");
    }
    ssd::Logits out;
    out.data = static_cast<const float*>(v.data);
    out.rows = v.shape[0];
    out.vocab = v.shape[1];
    out.device = v.device;
    out.device_index = v.device_id;
    if (v.device == DeviceType::kCUDA) {
      const py::object stream = py::module_::import("torch").attr("cuda").attr("current_stream")(v.device_id);
      out.stream = stream.attr("cuda_stream").cast<std::uintptr_t>();
    }
    auto* keep = new py::object(py::make_tuple(tensor, capsule));
    out.owner = std::shared_ptr<void>(keep, [](void* p) {
      py::gil_scoped_acquire gil;
      delete static_cast<py::object*>(p);
    });
    return out;
  }
  template <class F>
  void call(F&& f) {
    try {
      f();
    } catch (py::error_already_set& e) {  // "Type: message", without the Python stack (no source
      // locations travel into error messages; the runner logs its own tracebacks if it wants them)
      const std::string type = py::str(e.type().attr("__name__"));
      const std::string message = py::str(e.value());
      throw std::runtime_error(type + ": " + message);
    }
  }
  py::object runner_;
  std::string side_;
  int64_t vocab_ = 0;
};

// The public engine (ssdcore::Engine, its router thread included) over the Python side's runners,
// owning them so that they outlive it. Closed and destroyed without the GIL: its workers may need the
// GIL to finish a forward, and its router never takes it.
struct PyEngine {
  py::object py_target, py_draft;  // the Python runners: they own the tensors native runners borrow
  std::shared_ptr<ssd::ModelRunner> target, draft;
  std::unique_ptr<ssdcore::Engine> engine;
  ~PyEngine() {
    py::gil_scoped_release release;
    engine.reset();
  }
};

// The runner's native CpuModelRunner when it offers one (runner.native_runner()), else a PyModelRunner.
std::shared_ptr<ssd::ModelRunner> runner_for(const py::object& runner, const std::string& side) {
  const py::object native = runner.attr("native_runner")();
  if (!native.is_none()) return native.cast<std::shared_ptr<ssd::CpuModelRunner>>();
  return std::make_shared<PyModelRunner>(runner, side);
}

// A struct with for_each_field() as a dict of its fields.
template <class T>
py::dict fields_to_dict(const T& value) {
  py::dict d;
  T::for_each_field([&](const char* name, auto member) { d[name] = value.*member; });
  return d;
}

py::dict event_to_dict(const ssdcore::Event& ev) {
  py::dict d;
  d["seq_id"] = ev.id;
  d["tokens"] = ev.tokens;
  d["finish"] = std::string(ev.finished() ? ssdcore::to_string(ev.finish_reason) : "");
  d["error"] = ev.error;
  d["error_kind"] = std::string(ssdcore::to_string(ev.error_kind));
  if (ev.finished()) d["metrics"] = fields_to_dict(ev.metrics);
  return d;
}

// Every field of the snapshot, plus per proposal source (sequence-rounds, mean accepted drafted
// tokens) and per phase (seconds, intervals) keyed by name.
py::dict snapshot_to_dict(const ssdcore::StatsSnapshot& s) {
  py::dict d = fields_to_dict(s);
  py::dict by_source;
  for (int i = 0; i < ssdcore::kNumSpecSources; ++i)
    by_source[ssdcore::to_string(static_cast<ssdcore::SpecSource>(i))] =
        py::make_tuple(s.source_rounds[i], s.source_mean_accepted[i]);
  d["by_source"] = by_source;
  py::dict phases;
  for (int i = 0; i < ssdcore::kNumPhases; ++i) {
    phases[ssdcore::to_string(static_cast<ssdcore::Phase>(i))] = py::make_tuple(s.phase_ns[i] * 1e-9, s.phase_count[i]);
  }
  d["phases"] = phases;
  return d;
}

// Names indexed like an enumeration's vectors (StatsSnapshot::backup_counts, requests_finished).
template <class Enum>
std::vector<std::string> names_of(int count) {
  std::vector<std::string> names;
  for (int i = 0; i < count; ++i) names.emplace_back(ssdcore::to_string(static_cast<Enum>(i)));
  return names;
}

void bind_engine(py::module_& m) {
  py::class_<EngineConfig> config(m, "EngineConfig", "ssdcore::EngineConfig (ssdcore/config.h); use ssdcore.EngineConfig.");
  config.def(py::init<>())
      .def("validate", &EngineConfig::validate)
      .def_static("field_names", &EngineConfig::field_names)
      .def("scratch_slots", &EngineConfig::scratch_slots)
      .def("__repr__", &EngineConfig::to_string);
  EngineConfig::for_each_field([&config](const char* name, auto member) { config.def_readwrite(name, member); });

  py::class_<SamplingParams> params(m, "SamplingParams", "ssdcore::SamplingParams (ssdcore/sampling.h); use ssdcore.SamplingParams.");
  params.def(py::init<>())
      .def("validate", &SamplingParams::validate)
      .def_static("field_names", &SamplingParams::field_names);
  SamplingParams::for_each_field([&params](const char* name, auto member) { params.def_readwrite(name, member); });

  py::class_<ssdcore::RequestMetrics> metrics(m, "RequestMetrics", "ssdcore::RequestMetrics (ssdcore/request.h).");
  metrics.def(py::init<>()).def_static("field_names", [] {
    std::vector<std::string> names;
    ssdcore::RequestMetrics::for_each_field([&names](const char* name, auto) { names.emplace_back(name); });
    return names;
  });
  ssdcore::RequestMetrics::for_each_field([&metrics](const char* name, auto member) { metrics.def_readonly(name, member); });

  m.attr("BACKUPS") = names_of<ssdcore::Backup>(ssdcore::kNumBackups);
  m.attr("FINISH_REASONS") = names_of<ssdcore::FinishReason>(ssdcore::kNumFinishReasons);

  py::class_<PyEngine>(m, "Engine", "ssdcore::Engine over Python runners; use ssdcore.Engine.")
      .def(py::init([](const EngineConfig& config, py::object target, py::object draft,
                       std::vector<int32_t> eos_ids, std::vector<int> router_cores) {
             auto e = std::make_unique<PyEngine>();
             e->py_target = target, e->py_draft = draft;
             e->target = runner_for(target, "target");
             if (!draft.is_none()) e->draft = runner_for(draft, "draft");
             py::gil_scoped_release release;
             e->engine = ssdcore::detail::EngineBuilder::make(config, e->target.get(), e->draft.get(),
                                                              std::move(eos_ids), std::move(router_cores));
             return e;
           }),
           py::arg("config"), py::arg("target"), py::arg("draft"), py::arg("eos_ids"), py::arg("router_cores"))
      .def("submit",
           [](PyEngine& e, std::vector<int32_t> prompt, const SamplingParams& p, bool every_round) {
             return e.engine->submit(std::move(prompt), p,
                                     every_round ? ssdcore::Delivery::kNext : ssdcore::Delivery::kNextFinal);
           },
           py::arg("prompt"), py::arg("params"), py::arg("every_round") = true,
           "Queues a request whose events next() returns: one per round, or one at the finish.")
      .def("next",
           [](PyEngine& e, int64_t id, int timeout_ms) -> py::object {
             ssdcore::Event ev;
             bool got;
             {
               py::gil_scoped_release release;
               got = e.engine->next(id, &ev, std::chrono::milliseconds(timeout_ms));
             }
             return got ? py::object(event_to_dict(ev)) : py::none();
           },
           py::arg("id"), py::arg("timeout_ms"), "Next event of request `id` as a dict, None on timeout.")
      .def("cancel", [](PyEngine& e, int64_t id) { e.engine->cancel(id); })
      .def("discard", [](PyEngine& e, int64_t id) { e.engine->discard(id); })
      .def("pending", [](PyEngine& e) { return e.engine->pending(); })
      .def("stats", [](PyEngine& e) { return snapshot_to_dict(e.engine->stats()); })
      .def("reset_stats", [](PyEngine& e) { e.engine->reset_stats(); })
      .def("close", [](PyEngine& e) {
        py::gil_scoped_release release;
        if (e.engine) e.engine->close();
      });
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "ssdcore C++ runtime (speculative speculative decoding)";
  m.def("cuda_kernels_built", &ssd::cuda_kernels_built,
        "True when this build contains the CUDA kernels (nvcc was present at build time).");
  m.def("cuda_device_count", &ssd::cuda_device_count,
        "Number of usable CUDA devices (0 without a GPU or driver; never raises).");
  m.def("device_summary", &ssd::device_summary, "One line describing CUDA kernels and devices.");
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
  bind_cpu_model(m);
  bind_engine(m);
}
