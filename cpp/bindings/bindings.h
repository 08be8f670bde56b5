// bindings.h: the parts of the pybind11 module ssdcore._core, one per concept, each adding its
// functions and classes to the module (module.cpp calls them in order).
//
//   bind_ops        ops_binding.cpp        verify / sample_draft on DLPack tensors (ssdcore.ops)
//   bind_cpu_model  cpu_model_binding.cpp  the native CPU forward: CpuModel, ThreadTeam, CpuModelRunner
//   bind_engine     engine_binding.cpp     EngineConfig, SamplingParams, RequestMetrics, the Engine over
//                                          Python runners (py_model_runner.h) or native ones
//
// Only cpp/bindings/ includes pybind11. Every binding that blocks or does heavy work releases the
// GIL. Wrong argument values reaching here raise ValueError (std::invalid_argument).
#pragma once
#include <pybind11/pybind11.h>

namespace ssd_bindings {

void bind_ops(pybind11::module_& m);
void bind_cpu_model(pybind11::module_& m);
void bind_engine(pybind11::module_& m);

}  // namespace ssd_bindings
