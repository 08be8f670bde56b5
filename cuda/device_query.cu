// device_query.cu: see device_query.h.
#include <cuda_runtime.h>

#include "device_query.h"

namespace ssd {

int cuda_query_device_count(std::string* why) {
  int n = 0;
  cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    if (why) *why = cudaGetErrorString(err);
    cudaGetLastError();  // clear the sticky-free error so later calls start clean
    return 0;
  }
  return n;
}

}  // namespace ssd
