// tensor_view.h: the runtime's non-owning view of a tensor that crossed the Python boundary.
//
// cpp/bindings/ builds one from a DLPack capsule; nothing else in the runtime knows DLPack. A view does
// not own or keep alive its memory: the caller guarantees the producer outlives every use. Strides are
// in elements. Plain value type; any thread may read it.
#pragma once

#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "ssdcore/device.h"

namespace ssd {

enum class DType { kFloat32, kFloat16, kBFloat16, kFloat64, kInt32, kInt64, kUInt8, kBool, kOther };
using ssdcore::DeviceType;  // the one device enumeration (ssdcore/device.h)
using ssdcore::to_string;

struct TensorView {
  void* data = nullptr;
  DType dtype = DType::kOther;
  DeviceType device = DeviceType::kCPU;
  int device_id = 0;
  std::vector<int64_t> shape;
  std::vector<int64_t> strides;  // elements

  int ndim() const { return static_cast<int>(shape.size()); }
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t s : shape) n *= s;
    return n;
  }
  bool contiguous() const {
    if (numel() == 0) return true;  // nothing to lay out
    int64_t expect = 1;
    for (int i = ndim() - 1; i >= 0; --i) {
      if (shape[i] != 1 && strides[i] != expect) return false;
      expect *= shape[i];
    }
    return true;
  }
  template <class T>
  T* ptr() const {
    return static_cast<T*>(data);
  }
};

inline const char* dtype_name(DType d) {
  switch (d) {
    case DType::kFloat32: return "float32";
    case DType::kFloat16: return "float16";
    case DType::kBFloat16: return "bfloat16";
    case DType::kFloat64: return "float64";
    case DType::kInt32: return "int32";
    case DType::kInt64: return "int64";
    case DType::kUInt8: return "uint8";
    case DType::kBool: return "bool";
    default: return "other";
  }
}

inline std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// Throws std::invalid_argument (naming `name`) unless `v` is a contiguous `dtype` tensor whose shape
// matches `shape` (-1 = any extent) on `device`.
inline void expect_view(const TensorView& v, const std::string& name, DType dtype, const std::vector<int64_t>& shape,
                        DeviceType device) {
  if (v.dtype != dtype)
    throw std::invalid_argument(name + ": dtype " + dtype_name(v.dtype) + ", expected " + dtype_name(dtype));
  bool ok = v.ndim() == static_cast<int>(shape.size());
  for (size_t i = 0; ok && i < shape.size(); ++i) ok = shape[i] < 0 || shape[i] == v.shape[i];
  if (!ok) throw std::invalid_argument(name + ": shape " + shape_string(v.shape) + ", expected " + shape_string(shape));
  if (!v.contiguous()) throw std::invalid_argument(name + ": must be contiguous");
  if (v.device != device)
    throw std::invalid_argument(name + std::string(": expected a ") + (device == DeviceType::kCPU ? "CPU" : "CUDA") +
                                " tensor");
}

// Named tensors (a Python dict in cpp/bindings/capsule_views.h): returns the view named `name`, or throws
// std::invalid_argument when there is none.
using ArrayLookup = std::function<TensorView(const std::string& name)>;

// Throws std::invalid_argument unless `v` lives on the same device (type and index) as `ref`.
inline void check_same_device(const TensorView& v, const TensorView& ref, const std::string& name) {
  if (v.device != ref.device || v.device_id != ref.device_id)
    throw std::invalid_argument(name + ": must be on the same device as the logits");
}

}  // namespace ssd
