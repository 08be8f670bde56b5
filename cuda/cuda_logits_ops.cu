// cuda_logits_ops.cu: see cuda_logits_ops.h.
#include "cuda_logits_ops.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "logits_scan_blocks.cuh"
#include "verify_kernels.h"

namespace ssd {
namespace {

using cuda_detail::BlockShared;
using cuda_detail::kThreads;

size_t align_up(size_t x) { return (x + 255) & ~static_cast<size_t>(255); }

void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(err));
}

// Switches to `device` for the scope, restoring the caller's current device.
class DeviceScope {
 public:
  explicit DeviceScope(int device) {
    cudaGetDevice(&prev_);
    if (prev_ != device) check(cudaSetDevice(device), "cudaSetDevice");
  }
  ~DeviceScope() {
    int now = -1;
    cudaGetDevice(&now);
    if (now != prev_) cudaSetDevice(prev_);
  }

 private:
  int prev_ = 0;
};

__global__ void __launch_bounds__(kThreads)
    top_tokens_kernel(const float* logits, int32_t vocab, const int64_t* rows, const int32_t* counts,
                      const int32_t* excludes, const int64_t* offsets, int32_t* out, int32_t* found) {
  __shared__ BlockShared sh;
  const int64_t q = blockIdx.x;
  const int n = cuda_detail::top_tokens_block(logits + rows[q] * vocab, vocab, counts[q], excludes[q],
                                              out + offsets[q], sh);
  if (threadIdx.x == 0) found[q] = n;
}

__global__ void __launch_bounds__(kThreads)
    find_bad_kernel(const float* logits, int32_t vocab, const int64_t* rows, int64_t* columns, float* values) {
  __shared__ BlockShared sh;
  const int64_t i = blockIdx.x;
  cuda_detail::find_bad_block(logits + rows[i] * vocab, vocab, columns + i, values + i, sh);
}

class CudaLogitsOps final : public LogitsOps {
 public:
  ~CudaLogitsOps() override { release(); }

  void verify(const Logits& target, const VerifyBatch& vb, const VerifyResult& out) override {
    check_verify_params(vb);
    if (vb.batch == 0) return;
    DeviceScope scope(target.device_index);
    const size_t bk = static_cast<size_t>(vb.batch) * vb.k, ws = verify_workspace_bytes(vb.batch, vb.k);
    char* buf = reserve(target, ws + align_up(sizeof(int64_t) * (bk + 1)) + align_up(sizeof(int64_t) * 2 * vb.batch));
    auto* tokens = reinterpret_cast<int64_t*>(buf + ws);
    auto* results = reinterpret_cast<int64_t*>(buf + ws + align_up(sizeof(int64_t) * (bk + 1)));
    cudaStream_t stream = stream_of(target);
    if (bk > 0) to_device(tokens, vb.draft_tokens, sizeof(int64_t) * bk, stream);
    VerifyBatch d = vb;
    d.draft_tokens = tokens;
    const std::string err = launch_verify(d, VerifyResult{results, results + vb.batch}, buf, ws, target.device_index, stream);
    if (!err.empty()) throw std::runtime_error(err);
    to_host(out.accept_len, results, sizeof(int64_t) * vb.batch, stream);
    to_host(out.next_token, results + vb.batch, sizeof(int64_t) * vb.batch, stream);
    finish(stream);
  }

  void sample_draft(const Logits& logits, const DraftBatch& batch, int64_t* tokens) override {
    check_draft_params(batch);
    if (batch.rows == 0) return;
    DeviceScope scope(logits.device_index);
    const size_t ws = draft_workspace_bytes(batch.rows);
    char* buf = reserve(logits, ws + align_up(sizeof(int64_t) * batch.rows));
    auto* dev_tokens = reinterpret_cast<int64_t*>(buf + ws);
    cudaStream_t stream = stream_of(logits);
    const std::string err =
        launch_sample_draft(batch, DraftResult{dev_tokens, nullptr}, buf, ws, logits.device_index, stream);
    if (!err.empty()) throw std::runtime_error(err);
    to_host(tokens, dev_tokens, sizeof(int64_t) * batch.rows, stream);
    finish(stream);
  }

  void top_tokens(const Logits& logits, const std::vector<TopRequest>& requests,
                  std::vector<std::vector<int32_t>>* out) override;
  void find_bad(const Logits& logits, const std::vector<int64_t>& rows, std::vector<BadLogit>* out) override;

 private:
  static cudaStream_t stream_of(const Logits& l) { return reinterpret_cast<cudaStream_t>(l.stream); }

  // At least `bytes` of device memory on the logits' device.
  char* reserve(const Logits& logits, size_t bytes) {
    if (device_ != logits.device_index || bytes > capacity_) {
      release();
      DeviceScope scope(logits.device_index);
      void* p = nullptr;
      check(cudaMalloc(&p, bytes), "LogitsOps: cudaMalloc");
      buffer_ = static_cast<char*>(p), capacity_ = bytes, device_ = logits.device_index;
    }
    return buffer_;
  }
  void release() {
    if (buffer_ == nullptr) return;
    DeviceScope scope(device_);
    cudaFree(buffer_);
    buffer_ = nullptr, capacity_ = 0, device_ = -1;
  }
  static void to_device(void* dst, const void* src, size_t bytes, cudaStream_t s) {
    check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, s), "LogitsOps: copying parameters");
  }
  static void to_host(void* dst, const void* src, size_t bytes, cudaStream_t s) {
    check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, s), "LogitsOps: copying results");
  }
  static void finish(cudaStream_t s) {
    check(cudaGetLastError(), "LogitsOps: kernel launch");
    check(cudaStreamSynchronize(s), "LogitsOps: stream");
  }

  char* buffer_ = nullptr;
  size_t capacity_ = 0;
  int device_ = -1;
};

void CudaLogitsOps::top_tokens(const Logits& logits, const std::vector<TopRequest>& requests,
                               std::vector<std::vector<int32_t>>* out) {
  const size_t n = requests.size();
  out->assign(n, {});
  if (n == 0) return;
  DeviceScope scope(logits.device_index);
  std::vector<int64_t> rows(n), offsets(n);
  std::vector<int32_t> counts(n), excludes(n);
  int64_t total = 0;
  for (size_t q = 0; q < n; ++q) {
    rows[q] = requests[q].row, counts[q] = std::max(requests[q].count, 0), excludes[q] = requests[q].exclude;
    offsets[q] = total;
    total += counts[q];
  }
  const size_t a = align_up(sizeof(int64_t) * n), b = align_up(sizeof(int32_t) * n);
  char* buf = reserve(logits, 2 * a + 3 * b + align_up(sizeof(int32_t) * (total + 1)));
  auto* d_rows = reinterpret_cast<int64_t*>(buf);
  auto* d_offsets = reinterpret_cast<int64_t*>(buf + a);
  auto* d_counts = reinterpret_cast<int32_t*>(buf + 2 * a);
  auto* d_excludes = reinterpret_cast<int32_t*>(buf + 2 * a + b);
  auto* d_found = reinterpret_cast<int32_t*>(buf + 2 * a + 2 * b);
  auto* d_out = reinterpret_cast<int32_t*>(buf + 2 * a + 3 * b);
  cudaStream_t stream = stream_of(logits);
  to_device(d_rows, rows.data(), sizeof(int64_t) * n, stream);
  to_device(d_offsets, offsets.data(), sizeof(int64_t) * n, stream);
  to_device(d_counts, counts.data(), sizeof(int32_t) * n, stream);
  to_device(d_excludes, excludes.data(), sizeof(int32_t) * n, stream);
  top_tokens_kernel<<<static_cast<unsigned>(n), kThreads, 0, stream>>>(
      logits.data, static_cast<int32_t>(logits.vocab), d_rows, d_counts, d_excludes, d_offsets, d_out, d_found);
  std::vector<int32_t> found(n), tokens(static_cast<size_t>(total));
  to_host(found.data(), d_found, sizeof(int32_t) * n, stream);
  if (total > 0) to_host(tokens.data(), d_out, sizeof(int32_t) * total, stream);
  finish(stream);
  for (size_t q = 0; q < n; ++q) {
    (*out)[q].assign(tokens.begin() + offsets[q], tokens.begin() + offsets[q] + found[q]);
  }
}

void CudaLogitsOps::find_bad(const Logits& logits, const std::vector<int64_t>& rows, std::vector<BadLogit>* out) {
  const size_t n = rows.size();
  out->assign(n, BadLogit{});
  if (n == 0) return;
  DeviceScope scope(logits.device_index);
  const size_t a = align_up(sizeof(int64_t) * n);
  char* buf = reserve(logits, 2 * a + align_up(sizeof(float) * n));
  auto* d_rows = reinterpret_cast<int64_t*>(buf);
  auto* d_columns = reinterpret_cast<int64_t*>(buf + a);
  auto* d_values = reinterpret_cast<float*>(buf + 2 * a);
  cudaStream_t stream = stream_of(logits);
  to_device(d_rows, rows.data(), sizeof(int64_t) * n, stream);
  find_bad_kernel<<<static_cast<unsigned>(n), kThreads, 0, stream>>>(logits.data, static_cast<int32_t>(logits.vocab),
                                                                     d_rows, d_columns, d_values);
  std::vector<int64_t> columns(n);
  std::vector<float> values(n);
  to_host(columns.data(), d_columns, sizeof(int64_t) * n, stream);
  to_host(values.data(), d_values, sizeof(float) * n, stream);
  finish(stream);
  for (size_t i = 0; i < n; ++i) (*out)[i] = BadLogit{columns[i], values[i]};
}

}  // namespace

std::shared_ptr<LogitsOps> make_cuda_logits_ops() { return std::make_shared<CudaLogitsOps>(); }

}  // namespace ssd
