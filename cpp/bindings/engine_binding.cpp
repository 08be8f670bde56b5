// engine_binding.cpp: the engine for Python: EngineConfig, SamplingParams and RequestMetrics (the C++
// types themselves, field by field through their for_each_field()), and ssdcore::Engine built over the
// Python side's runners: each is the runner's native CpuModelRunner when the caller passes one, else
// a PyModelRunner around the Python object (py_model_runner.h). Construction never calls back into
// Python to choose: the Python Engine passes what it chose.
//
// Threads: the engine's router thread never takes the GIL; submit/next/... are called from any Python
// thread, and next() and close() wait without the GIL. The engine is closed and destroyed without the
// GIL, since its workers may need the GIL to finish a forward.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "bindings.h"
#include "cpu_model_runner.h"
#include "public_api.h"
#include "py_model_runner.h"
#include "py_token_masker.h"
#include "ssdcore/ssdcore.h"

namespace ssd_bindings {
namespace {

using ssdcore::EngineConfig;
using ssdcore::SamplingParams;

// The public engine (ssdcore::Engine, its router thread included) over the Python side's runners,
// owning them so that they outlive it.
struct PyEngine {
  py::object py_target, py_draft;  // the Python runners: they own the tensors native runners borrow
  std::shared_ptr<ssdcore::ModelRunner> target, draft;
  std::shared_ptr<ssdcore::TokenMasker> masker;  // null: constrained requests are rejected
  std::unique_ptr<ssdcore::Engine> engine;
  ~PyEngine() {
    py::gil_scoped_release release;
    engine.reset();
    masker.reset();
  }
};

// `native` (a CpuModelRunner) when given, else a PyModelRunner around `runner`.
std::shared_ptr<ssdcore::ModelRunner> runner_for(const py::object& runner, const py::object& native,
                                                 const std::string& side) {
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

}  // namespace

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
                       std::vector<int32_t> eos_ids, std::vector<int> router_cores, py::object target_native,
                       py::object draft_native, py::object token_masker) {
             auto e = std::make_unique<PyEngine>();
             e->py_target = target, e->py_draft = draft;
             e->target = runner_for(target, target_native, "target");
             if (!draft.is_none()) e->draft = runner_for(draft, draft_native, "draft");
             if (!token_masker.is_none()) e->masker = std::make_shared<PyTokenMasker>(token_masker);
             py::gil_scoped_release release;
             e->engine = ssdcore::detail::EngineBuilder::make(config, e->target.get(), e->draft.get(),
                                                              std::move(eos_ids), std::move(router_cores), e->masker);
             return e;
           }),
           py::arg("config"), py::arg("target"), py::arg("draft"), py::arg("eos_ids"), py::arg("router_cores"),
           py::arg("target_native") = py::none(), py::arg("draft_native") = py::none(),
           py::arg("token_masker") = py::none(),
           "The engine over the Python runners `target` and `draft` (None: no draft). `*_native` is the "
           "runner's CpuModelRunner (ModelRunner.native_runner()) to call instead of the Python runner, "
           "or None. `token_masker`: None, or an object with fill_masks(side, rows, masks_ptr, words) "
           "(cpp/bindings/py_token_masker.h) that constrains requests with SamplingParams.constraint > 0.")
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

}  // namespace ssd_bindings
