// py_model_runner.h: PyModelRunner, a Python runner object (ssdcore.engine.model_runner.ModelRunner)
// as an ssdcore::ModelRunner: the one narrow callback through which the engine's worker threads reach
// Python.
//
// forward() hands the Python runner the ForwardBatch's arrays as int32 numpy arrays (copies: the
// batch is a view valid only during the call) and takes back its logits tensor through DLPack without
// a copy: a CPU tensor, or a CUDA tensor that stays on its device with torch's current stream there
// (where the runner queued its forward), so verification and draft sampling run where it is.
//
// Threads: called by the one worker thread that drives the runner; each call takes the GIL for its
// duration only. The logits' owner releases the tensor under the GIL from whichever thread drops the
// last reference. A Python exception becomes std::runtime_error("Type: message"), without the
// Python stack.
#pragma once
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "model_runner.h"

namespace ssd_bindings {

namespace py = pybind11;

class PyModelRunner final : public ssdcore::ModelRunner {
 public:
  // `side` ("target" / "draft") names the runner in errors. Called with the GIL held.
  PyModelRunner(py::object runner, std::string side);
  ~PyModelRunner() override;
  int64_t vocab_size() const override { return vocab_; }
  void on_worker_start() override;
  ssdcore::Logits forward(const ssdcore::ForwardBatch& batch) override;

 private:
  // The returned tensor as Logits; throws std::runtime_error unless it is a contiguous float32 CPU or
  // CUDA [out_rows, vocab] tensor.
  ssdcore::Logits to_logits(py::object tensor, int32_t out_rows) const;

  py::object runner_;
  std::string side_;
  int64_t vocab_ = 0;
};

}  // namespace ssd_bindings
