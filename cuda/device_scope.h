// device_scope.h: the host-side helpers every CUDA launcher shares (verify_kernels.cu, cuda_logits_ops.cu).
//
//   DeviceScope   makes `device` current for the scope and restores the caller's device after; status()
//                 is the first CUDA error met while switching (cudaSuccess when the device is current).
//   SliceLayout   carves one device buffer into consecutive slices, each starting on a 256-byte boundary;
//                 take(bytes) returns the next slice's offset, total() the bytes the buffer needs.
// Host code only; no device memory is read. Any host thread may use them (a scope is per thread, as the
// CUDA current device is).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

namespace ssd {
namespace cuda_detail {

class DeviceScope {
 public:
  explicit DeviceScope(int device) {
    status_ = cudaGetDevice(&prev_);
    if (status_ == cudaSuccess && prev_ != device) {
      status_ = cudaSetDevice(device);
      switched_ = status_ == cudaSuccess;
    }
  }
  ~DeviceScope() {
    if (switched_) cudaSetDevice(prev_);
  }
  DeviceScope(const DeviceScope&) = delete;
  DeviceScope& operator=(const DeviceScope&) = delete;

  cudaError_t status() const { return status_; }

 private:
  int prev_ = 0;
  bool switched_ = false;
  cudaError_t status_ = cudaSuccess;
};

class SliceLayout {
 public:
  static constexpr size_t kAlign = 256;
  static size_t align_up(size_t bytes) { return (bytes + kAlign - 1) & ~(kAlign - 1); }

  size_t take(size_t bytes) {
    const size_t at = total_;
    total_ += align_up(bytes);
    return at;
  }
  size_t total() const { return total_; }

 private:
  size_t total_ = 0;
};

// The slice of `base` at `offset`, typed.
template <class T>
T* slice_at(void* base, size_t offset) {
  return reinterpret_cast<T*>(static_cast<char*>(base) + offset);
}

}  // namespace cuda_detail
}  // namespace ssd
