// capsule_views.cpp: see capsule_views.h.
#include "capsule_views.h"

#include <cstring>
#include <stdexcept>

#include "dlpack_view.h"

namespace ssd_bindings {

ssd::TensorView view_of(const py::object& obj, const std::string& name) {
  PyObject* p = obj.ptr();
  if (!PyCapsule_CheckExact(p)) throw std::invalid_argument(name + ": expected a DLPack capsule");
  const char* cname = PyCapsule_GetName(p);
  if (cname && std::strcmp(cname, "dltensor") == 0) {
    auto* mt = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(p, "dltensor"));
    return ssd::view_of_dltensor(mt->dl_tensor);
  }
  if (cname && std::strcmp(cname, "dltensor_versioned") == 0) {
    auto* mt = static_cast<DLManagedTensorVersioned*>(PyCapsule_GetPointer(p, "dltensor_versioned"));
    if (mt->version.major != DLPACK_MAJOR_VERSION)
      throw std::invalid_argument(name + ": unsupported DLPack major version " + std::to_string(mt->version.major));
    return ssd::view_of_dltensor(mt->dl_tensor);
  }
  throw std::invalid_argument(name + ": not an unconsumed DLPack capsule");
}

ssd::TensorView expect(const py::object& obj, const std::string& name, ssd::DType dtype, std::vector<int64_t> shape,
                       ssd::DeviceType device) {
  ssd::TensorView v = view_of(obj, name);
  ssd::expect_view(v, name, dtype, shape, device);
  return v;
}

ssd::ArrayLookup views_of(const py::dict& arrays, std::map<std::string, ssd::TensorView>& store) {
  for (const auto& item : arrays) {
    const std::string name = py::cast<std::string>(item.first);
    store[name] = item.second.is_none() ? ssd::TensorView{}
                                        : view_of(py::reinterpret_borrow<py::object>(item.second), name);
  }
  return [&store](const std::string& name) {
    const auto it = store.find(name);
    if (it == store.end()) throw std::invalid_argument("missing array " + name);
    return it->second;
  };
}

}  // namespace ssd_bindings
