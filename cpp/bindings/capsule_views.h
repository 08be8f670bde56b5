// capsule_views.h: DLPack capsules from Python as the runtime's TensorViews (tensor_view.h), shared by
// the bindings that take tensors (ops, the native CPU model, the Python model runner).
//
// Capsules are borrowed, not consumed: the caller's argument keeps the producer's tensor alive for the
// duration of the call, and the capsule's own destructor releases it afterwards. Only "dltensor" and
// "dltensor_versioned" (major version 1) capsules are accepted; anything else raises ValueError
// (std::invalid_argument) naming the argument.
// Threads: called with the GIL held; the lookup views_of() returns needs no GIL.
#pragma once
#include <pybind11/pybind11.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "tensor_view.h"

namespace ssd_bindings {

namespace py = pybind11;

// The view of the (unconsumed) DLPack capsule `obj`.
ssd::TensorView view_of(const py::object& obj, const std::string& name);

// A contiguous tensor of the given dtype and shape (-1 = any) on `device`.
ssd::TensorView expect(const py::object& obj, const std::string& name, ssd::DType dtype, std::vector<int64_t> shape,
                       ssd::DeviceType device);

template <class T>
const T* host_array(const py::object& obj, const std::string& name, ssd::DType dtype, std::vector<int64_t> shape) {
  return expect(obj, name, dtype, std::move(shape), ssd::DeviceType::kCPU).ptr<T>();
}

// Every array of a dict of DLPack capsules (parameter arrays, weights, rows) as a view, None as an empty
// view, kept in `store`; then a lookup over them that needs no GIL.
ssd::ArrayLookup views_of(const py::dict& arrays, std::map<std::string, ssd::TensorView>& store);

}  // namespace ssd_bindings
