// device_info.cpp: see device_info.h.
#include "device_info.h"

#include "cpu_linear.h"

#ifdef SSD_WITH_CUDA
#include "device_query.h"
#endif

namespace ssd {

bool cuda_kernels_built() {
#ifdef SSD_WITH_CUDA
  return true;
#else
  return false;
#endif
}

int cuda_device_count() {
#ifdef SSD_WITH_CUDA
  std::string why;
  return cuda_query_device_count(&why);
#else
  return 0;
#endif
}

std::string device_summary() {
  const std::string cpu = std::string("; CPU kernels: ") + cpu_kernel_isa();
#ifdef SSD_WITH_CUDA
  std::string why;
  int n = cuda_query_device_count(&why);
  return "CUDA kernels: built; devices: " + std::to_string(n) + (why.empty() ? "" : " (" + why + ")") + cpu;
#else
  return "CUDA kernels: not built (no nvcc at build time); devices: 0" + cpu;
#endif
}

}  // namespace ssd
