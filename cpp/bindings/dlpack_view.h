// dlpack_view.h: DLPack tensor -> ssd::TensorView, the one place that maps DLPack's dtype and device
// codes onto the runtime's.
//
// Included by capsule_views.cpp only (the runtime itself never sees DLPack). The view borrows the DLTensor's
// memory: the producer must outlive it. byte_offset is folded into data; absent strides mean a compact
// row-major tensor. Pure functions; any thread.
#pragma once

#include "dlpack/dlpack.h"
#include "tensor_view.h"

namespace ssd {

inline DType dtype_of(const DLDataType& t) {
  if (t.lanes != 1) return DType::kOther;
  if (t.code == kDLFloat && t.bits == 32) return DType::kFloat32;
  if (t.code == kDLFloat && t.bits == 16) return DType::kFloat16;
  if (t.code == kDLFloat && t.bits == 64) return DType::kFloat64;
  if (t.code == kDLBfloat && t.bits == 16) return DType::kBFloat16;
  if (t.code == kDLInt && t.bits == 32) return DType::kInt32;
  if (t.code == kDLInt && t.bits == 64) return DType::kInt64;
  if (t.code == kDLUInt && t.bits == 8) return DType::kUInt8;
  if (t.code == kDLBool && t.bits == 8) return DType::kBool;
  return DType::kOther;
}

inline TensorView view_of_dltensor(const DLTensor& t) {
  TensorView v;
  v.data = static_cast<char*>(t.data) + t.byte_offset;
  v.dtype = dtype_of(t.dtype);
  v.device = t.device.device_type == kDLCPU || t.device.device_type == kDLCUDAHost ? DeviceType::kCPU
             : t.device.device_type == kDLCUDA                                    ? DeviceType::kCUDA
                                                                                  : DeviceType::kOther;
  v.device_id = t.device.device_id;
  v.shape.assign(t.shape, t.shape + t.ndim);
  if (t.strides) {
    v.strides.assign(t.strides, t.strides + t.ndim);
  } else {
    v.strides.assign(t.ndim, 1);
    for (int i = t.ndim - 2; i >= 0; --i) v.strides[i] = v.strides[i + 1] * t.shape[i + 1];
  }
  return v;
}

}  // namespace ssd
