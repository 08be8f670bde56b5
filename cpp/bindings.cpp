// bindings.cpp: the pybind11 module ssdcore._core, the only file that includes pybind11.
//
// Tensors cross the boundary as DLPack capsules (see tensor_view.h for the runtime's view of them);
// every function that blocks or does heavy work releases the GIL. Errors in argument values are
// raised as ValueError by the Python layer before they reach here; what reaches here and is still
// wrong raises ValueError (std::invalid_argument) too.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "device_info.h"

namespace py = pybind11;

PYBIND11_MODULE(_core, m) {
  m.doc() = "ssdcore C++ runtime (speculative speculative decoding)";
  m.def("cuda_kernels_built", &ssd::cuda_kernels_built,
        "True when this build contains the CUDA kernels (nvcc was present at build time).");
  m.def("cuda_device_count", &ssd::cuda_device_count,
        "Number of usable CUDA devices (0 without a GPU or driver; never raises).");
  m.def("device_summary", &ssd::device_summary, "One line describing CUDA kernels and devices.");
}
