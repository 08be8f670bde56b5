// py_model_runner.cpp: see py_model_runner.h.
#include "py_model_runner.h"

#include <pybind11/numpy.h>

#include <memory>
#include <stdexcept>

#include "capsule_views.h"

namespace ssd_bindings {

namespace {

py::array_t<int32_t> array(const int32_t* data, std::size_t n) {
  return py::array_t<int32_t>(static_cast<py::ssize_t>(n), data);
}

// Runs f (which calls Python); a Python exception becomes std::runtime_error("Type: message"),
// without the Python stack (no source locations travel into error messages; the runner logs its own
// tracebacks if it wants them).
template <class F>
void call(F&& f) {
  try {
    f();
  } catch (py::error_already_set& e) {
    const std::string type = py::str(e.type().attr("__name__"));
    const std::string message = py::str(e.value());
    throw std::runtime_error(type + ": " + message);
  }
}

}  // namespace

PyModelRunner::PyModelRunner(py::object runner, std::string side) : runner_(std::move(runner)), side_(std::move(side)) {
  vocab_ = runner_.attr("vocab_size")().cast<int64_t>();
}

PyModelRunner::~PyModelRunner() {
  py::gil_scoped_acquire gil;
  runner_ = py::object();
}

void PyModelRunner::on_worker_start() {
  py::gil_scoped_acquire gil;
  call([&] { runner_.attr("on_worker_start")(); });
}

ssdcore::Logits PyModelRunner::forward(const ssdcore::ForwardBatch& b) {
  py::gil_scoped_acquire gil;
  ssdcore::Logits out;
  call([&] {
    const std::size_t n = b.rows;
    py::object attend = py::none(), extra = py::none();
    if (!b.causal()) {
      attend = array(b.attend_len, n);
      extra = py::array_t<int32_t>({static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(b.extra_width)},
                                   b.extra_slots);
    }
    py::object t = runner_.attr("forward")(array(b.tokens, n), array(b.positions, n), array(b.lanes, n),
                                           array(b.slots, n), attend, extra, array(b.out_index, n), b.out_rows);
    out = to_logits(t, b.out_rows);
  });
  return out;
}

ssdcore::Logits PyModelRunner::to_logits(py::object tensor, int32_t out_rows) const {
  using ssd::DeviceType;
  py::object capsule = tensor.attr("__dlpack__")();
  const ssd::TensorView v = view_of(capsule, side_ + " logits");
  const bool on_device = v.device == DeviceType::kCPU || v.device == DeviceType::kCUDA;
  if (v.dtype != ssd::DType::kFloat32 || v.ndim() != 2 || !v.contiguous() || !on_device || v.shape[0] != out_rows ||
      v.shape[1] != vocab_) {
    throw std::runtime_error("forward returned " + std::string(ssd::dtype_name(v.dtype)) + " " +
                             ssd::shape_string(v.shape) + "; expected contiguous float32 CPU or CUDA [" +
                             std::to_string(out_rows) + ", " + std::to_string(vocab_) + "]");
  }
  ssdcore::Logits out;
  out.data = static_cast<const float*>(v.data);
  out.rows = v.shape[0];
  out.vocab = v.shape[1];
  out.device = v.device;
  out.device_index = v.device_id;
  if (v.device == DeviceType::kCUDA) {
    const py::object stream = py::module_::import("torch").attr("cuda").attr("current_stream")(v.device_id);
    out.stream = stream.attr("cuda_stream").cast<std::uintptr_t>();
  }
  auto* keep = new py::object(py::make_tuple(tensor, capsule));
  out.owner = std::shared_ptr<const void>(keep, [](const void* p) {
    py::gil_scoped_acquire gil;
    delete static_cast<const py::object*>(p);
  });
  return out;
}

}  // namespace ssd_bindings
