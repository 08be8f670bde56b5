// py_token_masker.h: PyTokenMasker, a Python object with a fill_masks method as an ssdcore::TokenMasker
// (ssdcore/token_masker.h): the narrow callback through which the engine's workers reach a Python
// grammar (structured output).
//
// The Python side: fill_masks(side: int, rows: list[tuple[int, list[int], list[int]]], masks_ptr: int,
// words: int) with rows[i] = (constraint, generated, path) and masks_ptr the address of len(rows) * words
// uint32 words, zero-filled before the call, that it fills (bit t % 32 of word t / 32 of row i's words =
// token t allowed). Consecutive rows of one sequence share one `generated` list object: read it, do not
// modify it. A Python exception becomes std::runtime_error("Type: message") (the engine then
// fails the affected requests, see token_masker.h).
//
// Threads: the target worker (side 0) and the draft worker (side 1) call it concurrently; each call
// takes the GIL for its duration only, like PyModelRunner. The destructor takes the GIL.
#pragma once
#include <pybind11/pybind11.h>

#include <cstdint>

#include "ssdcore/token_masker.h"

namespace ssd_bindings {

namespace py = pybind11;

class PyTokenMasker final : public ssdcore::TokenMasker {
 public:
  // Called with the GIL held; throws std::invalid_argument when `masker` has no callable fill_masks.
  explicit PyTokenMasker(py::object masker);
  ~PyTokenMasker() override;
  void fill_masks(int side, const ssdcore::MaskRow* rows, std::int32_t n, std::uint32_t* masks,
                  std::int32_t words) override;

 private:
  py::object fill_;  // the bound method
};

}  // namespace ssd_bindings
