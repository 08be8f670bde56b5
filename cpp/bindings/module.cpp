// module.cpp: the pybind11 module ssdcore._core (the C++ runtime for Python): the device queries, then
// each concept's binding (bindings.h).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "bindings.h"
#include "device_info.h"

PYBIND11_MODULE(_core, m) {
  m.doc() = "ssdcore C++ runtime (speculative speculative decoding)";
  m.def("cuda_kernels_built", &ssd::cuda_kernels_built,
        "True when this build contains the CUDA kernels (nvcc was present at build time).");
  m.def("cuda_device_count", &ssd::cuda_device_count,
        "Number of usable CUDA devices (0 without a GPU or driver; never raises).");
  m.def("device_summary", &ssd::device_summary, "One line describing CUDA kernels and devices.");
  // Python runners on a GPU return their logits on the device (engine/model_runner.py) when the
  // engine can verify and sample there: a build with the CUDA LogitsOps (cuda/cuda_logits_ops.h).
  m.attr("accepts_device_logits") = ssd::cuda_kernels_built();
  ssd_bindings::bind_ops(m);
  ssd_bindings::bind_cpu_model(m);
  ssd_bindings::bind_engine(m);
}
