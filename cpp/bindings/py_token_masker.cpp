// py_token_masker.cpp: see py_token_masker.h.
#include "py_token_masker.h"

#include <stdexcept>
#include <string>

namespace ssd_bindings {

namespace {

py::list as_list(const std::int32_t* tokens, std::int32_t n) {
  py::list out(n);
  for (std::int32_t i = 0; i < n; ++i) out[i] = py::int_(tokens[i]);
  return out;
}

}  // namespace

PyTokenMasker::PyTokenMasker(py::object masker) {
  if (!py::hasattr(masker, "fill_masks") || !PyCallable_Check(masker.attr("fill_masks").ptr())) {
    throw std::invalid_argument("token_masker = " + std::string(py::repr(masker)) +
                                " is invalid: allowed None or an object with a method fill_masks(side, rows, "
                                "masks_ptr, words)");
  }
  fill_ = masker.attr("fill_masks");
}

PyTokenMasker::~PyTokenMasker() {
  py::gil_scoped_acquire gil;
  fill_ = py::object();
}

void PyTokenMasker::fill_masks(int side, const ssdcore::MaskRow* rows, std::int32_t n, std::uint32_t* masks,
                               std::int32_t words) {
  py::gil_scoped_acquire gil;
  try {
    py::list py_rows(n);
    // Rows of one sequence come together and share its generated tokens: one list for them (the
    // masker must not modify it), so a tree step costs one conversion per sequence, not per row.
    const std::int32_t* last = nullptr;
    std::int32_t last_n = -1;
    py::list generated;
    for (std::int32_t i = 0; i < n; ++i) {
      const ssdcore::MaskRow& r = rows[i];
      if (r.generated != last || r.n_generated != last_n) {
        generated = as_list(r.generated, r.n_generated);
        last = r.generated, last_n = r.n_generated;
      }
      py_rows[i] = py::make_tuple(r.constraint, generated, as_list(r.path, r.n_path));
    }
    fill_(side, py_rows, reinterpret_cast<std::uintptr_t>(masks), words);
  } catch (py::error_already_set& e) {  // no Python stack in the message, as for model runners
    const std::string type = py::str(e.type().attr("__name__"));
    const std::string message = py::str(e.value());
    throw std::runtime_error(type + ": " + message);
  }
}

}  // namespace ssd_bindings
