// cuda_logits_ops.cu: see cuda_logits_ops.h.
//
// Every op: check the host arguments (nothing on the device is read by the host), make the logits' device
// current, carve the op's slices out of the one buffer, copy the host parameters in, launch, copy the results
// out, all queued on the logits' stream in that order, then synchronize that stream. So the kernels run after
// the forward that produced the logits (queued earlier on the same stream), and the buffer is idle again
// when the op returns, ready for the next op whatever its stream.
#include "cuda_logits_ops.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "device_scope.h"
#include "logits_scan_blocks.cuh"
#include "verify_kernels.h"

namespace ssd {
namespace {

using cuda_detail::BlockShared;
using cuda_detail::DeviceScope;
using cuda_detail::kThreads;
using cuda_detail::slice_at;
using cuda_detail::SliceLayout;

void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess) throw std::runtime_error(std::string("LogitsOps: ") + what + ": " + cudaGetErrorString(err));
}

void enter(const DeviceScope& scope, const Logits& logits) {
  check(scope.status(), ("selecting CUDA device " + std::to_string(logits.device_index)).c_str());
}

// Rows [first, first + count) must lie in the logits: an index past them would read out of bounds on the device
// (an illegal address poisons the whole CUDA context), so the host checks them first.
void check_rows(const Logits& logits, int64_t first, int64_t count, const char* what) {
  if (first < 0 || count < 0 || first + count > logits.rows)
    throw std::invalid_argument(std::string(what) + ": rows " + std::to_string(first) + ".." +
                                std::to_string(first + count - 1) + " of logits with " + std::to_string(logits.rows) +
                                " rows; allowed: 0.." + std::to_string(logits.rows - 1));
}

void check_vocab(const Logits& logits, int64_t vocab, const char* what) {
  if (vocab != logits.vocab || logits.vocab < 1 || logits.vocab > 0x7FFFFFFF)
    throw std::invalid_argument(std::string(what) + ": vocabulary " + std::to_string(vocab) + " for logits of " +
                                std::to_string(logits.vocab) + " columns; allowed: equal, in 1..2147483647");
}

__global__ void __launch_bounds__(kThreads)
    top_tokens_kernel(const float* logits, int32_t vocab, const int64_t* rows, const int32_t* counts,
                      const int32_t* excludes, const int64_t* offsets, int32_t* out, int32_t* found) {
  __shared__ BlockShared sh;
  cuda_detail::top_tokens_request_block(blockIdx.x, logits, vocab, rows, counts, excludes, offsets, out, found, sh);
}

__global__ void __launch_bounds__(kThreads)
    find_bad_kernel(const float* logits, int32_t vocab, const int64_t* rows, int64_t* columns, float* values) {
  __shared__ BlockShared sh;
  cuda_detail::find_bad_request_block(blockIdx.x, logits, vocab, rows, columns, values, sh);
}

__global__ void __launch_bounds__(kThreads)
    apply_masks_kernel(float* logits, int32_t vocab, const int64_t* rows, const uint32_t* masks, int32_t words) {
  cuda_detail::apply_mask_request_block(blockIdx.x, logits, vocab, rows, masks, words);
}

class CudaLogitsOps final : public LogitsOps {
 public:
  ~CudaLogitsOps() override { release(); }

  void verify(const Logits& target, const VerifyBatch& vb, const VerifyResult& out) override;
  void sample_draft(const Logits& logits, const DraftBatch& batch, int64_t* tokens) override;
  void top_tokens(const Logits& logits, const std::vector<TopRequest>& requests,
                  std::vector<std::vector<int32_t>>* out) override;
  void find_bad(const Logits& logits, const std::vector<int64_t>& rows, std::vector<BadLogit>* out) override;
  void apply_masks(const Logits& logits, const std::vector<int64_t>& rows, const uint32_t* masks,
                   int32_t words) override;

 private:
  static cudaStream_t stream_of(const Logits& l) { return reinterpret_cast<cudaStream_t>(l.stream); }

  // At least `bytes` of device memory on the logits' device (the current one: call inside its DeviceScope).
  // The previous buffer is idle (every op synchronizes before returning), so it can be freed at once.
  char* reserve(const Logits& logits, size_t bytes) {
    if (device_ != logits.device_index || bytes > capacity_) {
      release();
      void* p = nullptr;
      check(cudaMalloc(&p, bytes), "cudaMalloc");
      buffer_ = static_cast<char*>(p), capacity_ = bytes, device_ = logits.device_index;
    }
    return buffer_;
  }
  void release() {
    if (buffer_ == nullptr) return;
    DeviceScope scope(device_);
    cudaFree(buffer_);  // no error to report from a destructor; a dead context frees it anyway
    buffer_ = nullptr, capacity_ = 0, device_ = -1;
  }
  static void to_device(void* dst, const void* src, size_t bytes, cudaStream_t s) {
    if (bytes > 0) check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, s), "copying parameters");
  }
  static void to_host(void* dst, const void* src, size_t bytes, cudaStream_t s) {
    if (bytes > 0) check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, s), "copying results");
  }
  static void launched(const char* what) { check(cudaGetLastError(), what); }

  // Ends an op on its stream: finish() synchronizes and reports; an op left early by an error after some work
  // was queued synchronizes on the way out, so the buffer is idle whatever happened.
  class StreamWork {
   public:
    explicit StreamWork(cudaStream_t s) : stream_(s) {}
    ~StreamWork() {
      if (open_) cudaStreamSynchronize(stream_);
    }
    void finish() {
      open_ = false;
      check(cudaStreamSynchronize(stream_), "running on the logits' stream");
    }

   private:
    cudaStream_t stream_;
    bool open_ = true;
  };

  char* buffer_ = nullptr;
  size_t capacity_ = 0;
  int device_ = -1;
};

void CudaLogitsOps::verify(const Logits& target, const VerifyBatch& vb, const VerifyResult& out) {
  check_verify_params(vb);
  check_verify_tokens(vb);
  if (vb.batch == 0) return;
  check_vocab(target, vb.vocab, "verify");
  check_rows(target, 0, static_cast<int64_t>(vb.batch) * (vb.k + 1), "verify");
  DeviceScope scope(target.device_index);
  enter(scope, target);
  const size_t bk = static_cast<size_t>(vb.batch) * vb.k;
  SliceLayout layout;
  const size_t ws = layout.take(verify_workspace_bytes(vb.batch, vb.k));
  const size_t at_tokens = layout.take(sizeof(int64_t) * (bk + 1));
  const size_t at_results = layout.take(sizeof(int64_t) * 2 * vb.batch);
  char* buf = reserve(target, layout.total());
  auto* tokens = slice_at<int64_t>(buf, at_tokens);
  auto* results = slice_at<int64_t>(buf, at_results);
  cudaStream_t stream = stream_of(target);
  StreamWork work(stream);
  to_device(tokens, vb.draft_tokens, sizeof(int64_t) * bk, stream);
  VerifyBatch d = vb;
  d.draft_tokens = tokens;  // the draft_rows array, params and fan-out are copied by launch_verify
  const std::string err =
      launch_verify(d, VerifyResult{results, results + vb.batch}, slice_at<char>(buf, ws),
                    verify_workspace_bytes(vb.batch, vb.k), target.device_index, stream);
  if (!err.empty()) throw std::runtime_error(err);
  to_host(out.accept_len, results, sizeof(int64_t) * vb.batch, stream);
  to_host(out.next_token, results + vb.batch, sizeof(int64_t) * vb.batch, stream);
  work.finish();
}

void CudaLogitsOps::sample_draft(const Logits& logits, const DraftBatch& batch, int64_t* tokens) {
  check_draft_params(batch);
  if (batch.rows == 0) return;
  check_vocab(logits, batch.vocab, "sample_draft");
  check_rows(logits, 0, batch.rows, "sample_draft");
  DeviceScope scope(logits.device_index);
  enter(scope, logits);
  SliceLayout layout;
  const size_t ws = layout.take(draft_workspace_bytes(batch.rows));
  const size_t at_tokens = layout.take(sizeof(int64_t) * batch.rows);
  char* buf = reserve(logits, layout.total());
  auto* dev_tokens = slice_at<int64_t>(buf, at_tokens);
  cudaStream_t stream = stream_of(logits);
  StreamWork work(stream);
  const std::string err = launch_sample_draft(batch, DraftResult{dev_tokens, nullptr}, slice_at<char>(buf, ws),
                                              draft_workspace_bytes(batch.rows), logits.device_index, stream);
  if (!err.empty()) throw std::runtime_error(err);
  to_host(tokens, dev_tokens, sizeof(int64_t) * batch.rows, stream);
  work.finish();
}

void CudaLogitsOps::top_tokens(const Logits& logits, const std::vector<TopRequest>& requests,
                               std::vector<std::vector<int32_t>>* out) {
  const size_t n = requests.size();
  out->assign(n, {});
  if (n == 0) return;
  check_vocab(logits, logits.vocab, "top_tokens");
  std::vector<int64_t> rows(n), offsets(n);
  std::vector<int32_t> counts(n), excludes(n);
  int64_t total = 0;
  for (size_t q = 0; q < n; ++q) {
    check_rows(logits, requests[q].row, 1, "top_tokens");
    // More than V tokens never exist: the clamp bounds the output slice, the result is the same.
    rows[q] = requests[q].row, excludes[q] = requests[q].exclude;
    counts[q] = static_cast<int32_t>(std::min<int64_t>(std::max(requests[q].count, 0), logits.vocab));
    offsets[q] = total;
    total += counts[q];
  }
  DeviceScope scope(logits.device_index);
  enter(scope, logits);
  SliceLayout layout;
  const size_t at_rows = layout.take(sizeof(int64_t) * n), at_offsets = layout.take(sizeof(int64_t) * n);
  const size_t at_counts = layout.take(sizeof(int32_t) * n), at_excludes = layout.take(sizeof(int32_t) * n);
  const size_t at_found = layout.take(sizeof(int32_t) * n), at_out = layout.take(sizeof(int32_t) * (total + 1));
  char* buf = reserve(logits, layout.total());
  auto* d_rows = slice_at<int64_t>(buf, at_rows);
  auto* d_offsets = slice_at<int64_t>(buf, at_offsets);
  auto* d_counts = slice_at<int32_t>(buf, at_counts);
  auto* d_excludes = slice_at<int32_t>(buf, at_excludes);
  auto* d_found = slice_at<int32_t>(buf, at_found);
  auto* d_out = slice_at<int32_t>(buf, at_out);
  cudaStream_t stream = stream_of(logits);
  StreamWork work(stream);
  to_device(d_rows, rows.data(), sizeof(int64_t) * n, stream);
  to_device(d_offsets, offsets.data(), sizeof(int64_t) * n, stream);
  to_device(d_counts, counts.data(), sizeof(int32_t) * n, stream);
  to_device(d_excludes, excludes.data(), sizeof(int32_t) * n, stream);
  top_tokens_kernel<<<static_cast<unsigned>(n), kThreads, 0, stream>>>(
      logits.data, static_cast<int32_t>(logits.vocab), d_rows, d_counts, d_excludes, d_offsets, d_out, d_found);
  launched("top_tokens kernel");
  std::vector<int32_t> found(n), tokens(static_cast<size_t>(total));
  to_host(found.data(), d_found, sizeof(int32_t) * n, stream);
  to_host(tokens.data(), d_out, sizeof(int32_t) * total, stream);
  work.finish();
  for (size_t q = 0; q < n; ++q) {
    const int32_t m = std::min(std::max(found[q], 0), counts[q]);
    (*out)[q].assign(tokens.begin() + offsets[q], tokens.begin() + offsets[q] + m);
  }
}

void CudaLogitsOps::find_bad(const Logits& logits, const std::vector<int64_t>& rows, std::vector<BadLogit>* out) {
  const size_t n = rows.size();
  out->assign(n, BadLogit{});
  if (n == 0) return;
  check_vocab(logits, logits.vocab, "find_bad");
  for (int64_t r : rows) check_rows(logits, r, 1, "find_bad");
  DeviceScope scope(logits.device_index);
  enter(scope, logits);
  SliceLayout layout;
  const size_t at_rows = layout.take(sizeof(int64_t) * n), at_columns = layout.take(sizeof(int64_t) * n);
  const size_t at_values = layout.take(sizeof(float) * n);
  char* buf = reserve(logits, layout.total());
  auto* d_rows = slice_at<int64_t>(buf, at_rows);
  auto* d_columns = slice_at<int64_t>(buf, at_columns);
  auto* d_values = slice_at<float>(buf, at_values);
  cudaStream_t stream = stream_of(logits);
  StreamWork work(stream);
  to_device(d_rows, rows.data(), sizeof(int64_t) * n, stream);
  find_bad_kernel<<<static_cast<unsigned>(n), kThreads, 0, stream>>>(logits.data, static_cast<int32_t>(logits.vocab),
                                                                     d_rows, d_columns, d_values);
  launched("find_bad kernel");
  std::vector<int64_t> columns(n);
  std::vector<float> values(n);
  to_host(columns.data(), d_columns, sizeof(int64_t) * n, stream);
  to_host(values.data(), d_values, sizeof(float) * n, stream);
  work.finish();
  for (size_t i = 0; i < n; ++i) (*out)[i] = BadLogit{columns[i], values[i]};
}

// The masks go to the device on the logits' stream, after the forward queued there; the kernel writes the
// rows in place before any later op (every op runs on the same stream and synchronizes).
void CudaLogitsOps::apply_masks(const Logits& logits, const std::vector<int64_t>& rows, const uint32_t* masks,
                                int32_t words) {
  const size_t n = rows.size();
  if (n == 0) return;
  check_vocab(logits, logits.vocab, "apply_masks");
  if (words != mask_words(logits.vocab))
    throw std::invalid_argument("apply_masks: words = " + std::to_string(words) + " for a vocabulary of " +
                                std::to_string(logits.vocab) + "; allowed: ceil(vocab / 32)");
  for (int64_t r : rows) check_rows(logits, r, 1, "apply_masks");
  DeviceScope scope(logits.device_index);
  enter(scope, logits);
  SliceLayout layout;
  const size_t at_rows = layout.take(sizeof(int64_t) * n);
  const size_t at_masks = layout.take(sizeof(uint32_t) * n * static_cast<size_t>(words));
  char* buf = reserve(logits, layout.total());
  auto* d_rows = slice_at<int64_t>(buf, at_rows);
  auto* d_masks = slice_at<uint32_t>(buf, at_masks);
  cudaStream_t stream = stream_of(logits);
  StreamWork work(stream);
  to_device(d_rows, rows.data(), sizeof(int64_t) * n, stream);
  to_device(d_masks, masks, sizeof(uint32_t) * n * static_cast<size_t>(words), stream);
  apply_masks_kernel<<<static_cast<unsigned>(n), kThreads, 0, stream>>>(
      const_cast<float*>(logits.data), static_cast<int32_t>(logits.vocab), d_rows, d_masks, words);
  launched("apply_masks kernel");
  work.finish();
}

}  // namespace

std::shared_ptr<LogitsOps> make_cuda_logits_ops() { return std::make_shared<CudaLogitsOps>(); }

}  // namespace ssd
