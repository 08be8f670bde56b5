// cpu_model_binding.cpp: the native CPU forward for Python (cpp/cpu_model/): CpuModel (the forward
// over named arrays, used by ssdcore.models.cpu_model), ThreadTeam, and CpuModelRunner, the engine
// runner that the Python Engine passes to the engine in place of its Python runner.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "bindings.h"
#include "capsule_views.h"
#include "cpu_model.h"
#include "cpu_model_runner.h"

namespace ssd_bindings {

using ssd::TensorView;

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

}  // namespace ssd_bindings
