// verify_kernels.cu: see verify_kernels.h. Mirrors cpp/verifier.cpp and cpp/draft_sampler.cpp.
#include "verify_kernels.h"

#include <cuda_runtime.h>

#include "verify_blocks.cuh"

namespace ssd {
namespace {

using cuda_detail::BlockShared;
using cuda_detail::kThreads;

size_t align_up(size_t x) { return (x + 255) & ~static_cast<size_t>(255); }

struct VerifyLayout {
  size_t params, fanout, rows, target_stats, draft_stats, total;
};

VerifyLayout verify_layout(int32_t batch, int32_t k) {
  VerifyLayout l{};
  const size_t b = batch > 0 ? static_cast<size_t>(batch) : 1;
  const size_t bk = b * static_cast<size_t>(k > 0 ? k : 1);
  l.params = 0;
  l.fanout = l.params + align_up(sizeof(SeqVerifyParams) * b);
  l.rows = l.fanout + align_up(sizeof(int32_t) * bk);
  l.target_stats = l.rows + align_up(sizeof(const float*) * bk);
  l.draft_stats = l.target_stats + align_up(sizeof(RowStats) * b * (static_cast<size_t>(k) + 1));
  l.total = l.draft_stats + align_up(sizeof(RowStats) * bk);
  return l;
}

// Switches to `device` for the scope, restoring the caller's current device.
class DeviceScope {
 public:
  explicit DeviceScope(int device) {
    cudaGetDevice(&prev_);
    if (prev_ != device) cudaSetDevice(device);
  }
  ~DeviceScope() {
    int now = -1;
    cudaGetDevice(&now);
    if (now != prev_) cudaSetDevice(prev_);
  }

 private:
  int prev_ = 0;
};

std::string last_error(const char* what) {
  const cudaError_t err = cudaGetLastError();
  return err == cudaSuccess ? std::string() : std::string(what) + ": " + cudaGetErrorString(err);
}

__global__ void __launch_bounds__(kThreads)
    verify_row_stats_kernel(const float* target_logits, const float* const* draft_rows, int32_t batch, int32_t k,
                            int32_t vocab, const SeqVerifyParams* params, const int32_t* fanout,
                            RowStats* target_stats, RowStats* draft_stats) {
  __shared__ BlockShared sh;
  cuda_detail::verify_row_stats_block(blockIdx.x, target_logits, draft_rows, batch, k, vocab, params, fanout,
                                      target_stats, draft_stats, sh);
}

__global__ void __launch_bounds__(kThreads)
    verify_seq_kernel(const float* target_logits, const int64_t* tokens, const float* const* draft_rows, int32_t k,
                      int32_t vocab, const SeqVerifyParams* params, const RowStats* target_stats,
                      const RowStats* draft_stats, int64_t* accept_len, int64_t* next_token) {
  __shared__ BlockShared sh;
  cuda_detail::verify_seq_block(blockIdx.x, target_logits, tokens, draft_rows, k, vocab, params, target_stats,
                                draft_stats, accept_len, next_token, sh);
}

__global__ void __launch_bounds__(kThreads)
    sample_draft_kernel(const float* logits, int32_t vocab, const DraftRowParams* params, int64_t* tokens,
                        float* probs) {
  __shared__ BlockShared sh;
  cuda_detail::sample_draft_block(blockIdx.x, logits, vocab, params, tokens, probs, sh);
}

}  // namespace

size_t verify_workspace_bytes(int32_t batch, int32_t k) { return verify_layout(batch, k).total; }

std::string launch_verify(const VerifyBatch& vb, const VerifyResult& result, void* workspace,
                          size_t workspace_bytes, int device, cudaStream_t stream) {
  if (vb.batch == 0) return std::string();
  const VerifyLayout l = verify_layout(vb.batch, vb.k);
  if (!workspace || workspace_bytes < l.total)
    return "verify: workspace of " + std::to_string(workspace_bytes) + " bytes, need " + std::to_string(l.total);
  DeviceScope scope(device);
  char* ws = static_cast<char*>(workspace);
  auto* params = reinterpret_cast<SeqVerifyParams*>(ws + l.params);
  auto* fanout = reinterpret_cast<int32_t*>(ws + l.fanout);
  auto* rows = reinterpret_cast<const float**>(ws + l.rows);
  auto* tstats = reinterpret_cast<RowStats*>(ws + l.target_stats);
  auto* dstats = reinterpret_cast<RowStats*>(ws + l.draft_stats);
  cudaMemcpyAsync(params, vb.params, sizeof(SeqVerifyParams) * vb.batch, cudaMemcpyHostToDevice, stream);
  const size_t bk = static_cast<size_t>(vb.batch) * vb.k;
  if (vb.saguaro_fanout && bk > 0)
    cudaMemcpyAsync(fanout, vb.saguaro_fanout, sizeof(int32_t) * bk, cudaMemcpyHostToDevice, stream);
  if (vb.draft_rows && bk > 0)
    cudaMemcpyAsync(rows, vb.draft_rows, sizeof(const float*) * bk, cudaMemcpyHostToDevice, stream);
  std::string err = last_error("verify: copying parameters");
  if (!err.empty()) return err;
  const int64_t blocks = static_cast<int64_t>(vb.batch) * (2 * vb.k + 1);
  const float* const* draft_rows = vb.draft_rows ? rows : nullptr;
  verify_row_stats_kernel<<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(
      vb.target_logits, draft_rows, vb.batch, vb.k, vb.vocab, params, vb.saguaro_fanout ? fanout : nullptr,
      tstats, dstats);
  err = last_error("verify: row statistics kernel");
  if (!err.empty()) return err;
  verify_seq_kernel<<<static_cast<unsigned>(vb.batch), kThreads, 0, stream>>>(
      vb.target_logits, vb.draft_tokens, draft_rows, vb.k, vb.vocab, params, tstats, dstats, result.accept_len,
      result.next_token);
  return last_error("verify: sequence kernel");
}

size_t draft_workspace_bytes(int32_t rows) {
  return align_up(sizeof(DraftRowParams) * static_cast<size_t>(rows > 0 ? rows : 1));
}

std::string launch_sample_draft(const DraftBatch& batch, const DraftResult& result, void* workspace,
                                size_t workspace_bytes, int device, cudaStream_t stream) {
  if (batch.rows == 0) return std::string();
  if (!workspace || workspace_bytes < draft_workspace_bytes(batch.rows))
    return "sample_draft: workspace of " + std::to_string(workspace_bytes) + " bytes, need " +
           std::to_string(draft_workspace_bytes(batch.rows));
  DeviceScope scope(device);
  auto* params = static_cast<DraftRowParams*>(workspace);
  cudaMemcpyAsync(params, batch.params, sizeof(DraftRowParams) * batch.rows, cudaMemcpyHostToDevice, stream);
  std::string err = last_error("sample_draft: copying parameters");
  if (!err.empty()) return err;
  sample_draft_kernel<<<static_cast<unsigned>(batch.rows), kThreads, 0, stream>>>(batch.logits, batch.vocab, params,
                                                                                  result.tokens, result.probs);
  return last_error("sample_draft: kernel");
}

}  // namespace ssd
