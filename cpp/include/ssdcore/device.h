// ssdcore/device.h: ssdcore::DeviceType, the kind of memory a tensor (e.g. a runner's Logits) lives in.
//
// The one device enumeration: the public API, the runtime (which picks the CPU reference or the CUDA
// kernels from it) and the bindings (from a DLPack tensor's device) all use it. Values are stable.
// Threads: plain values and a pure function.
#pragma once

namespace ssdcore {

enum class DeviceType : int {
  kCPU = 0,  // host memory
  kCUDA,     // memory of a CUDA device (its index is given beside it)
  kOther,    // anything else (never accepted as logits)
};

// "cpu", "cuda" or "other".
inline const char* to_string(DeviceType d) noexcept {
  return d == DeviceType::kCPU ? "cpu" : d == DeviceType::kCUDA ? "cuda" : "other";
}

}  // namespace ssdcore
