// tensor_view.h: the runtime's non-owning view of a tensor that crossed the Python boundary.
//
// bindings.cpp builds one from a DLPack capsule; nothing else in the runtime knows DLPack. A view does
// not own or keep alive its memory: the caller guarantees the producer outlives every use. Strides are
// in elements. Plain value type; any thread may read it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ssd {

enum class DType { kFloat32, kFloat16, kBFloat16, kFloat64, kInt32, kInt64, kUInt8, kBool, kOther };
enum class DeviceType { kCPU, kCUDA, kOther };

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

}  // namespace ssd
