// device_info.h: what this build of the runtime can do with GPUs.
//
// cuda_kernels_built() is fixed at build time (nvcc was found). cuda_device_count() asks the CUDA
// runtime (linked statically) at call time and returns 0, never throws, when there is no driver or no
// device, so the library works unchanged on CPU-only machines. Any thread may call both.
#pragma once
#include <string>

namespace ssd {

bool cuda_kernels_built();
int cuda_device_count();
// A one-line human-readable description ("CUDA kernels: built; devices: 0 (no driver); CPU kernels:
// avx512"): the CUDA build and devices, then the CPU kernel path in use (cpu_linear.h).
std::string device_summary();

}  // namespace ssd
