// verify_kernels.cu: see verify_kernels.h. Mirrors cpp/sampling/verifier.cpp and cpp/sampling/draft_sampler.cpp.
#include "verify_kernels.h"

#include <cuda_runtime.h>

#include "device_scope.h"
#include "verify_blocks.cuh"

namespace ssd {
namespace {

using cuda_detail::BlockShared;
using cuda_detail::DeviceScope;
using cuda_detail::kThreads;
using cuda_detail::slice_at;
using cuda_detail::SliceLayout;

// The verify workspace: host parameters copied in, then the row statistics.
struct VerifyLayout {
  size_t params, fanout, rows, target_stats, draft_stats, total;
};

VerifyLayout verify_layout(int32_t batch, int32_t k) {
  const size_t b = batch > 0 ? static_cast<size_t>(batch) : 1;
  const size_t k0 = k > 0 ? static_cast<size_t>(k) : 0;
  const size_t bk = b * (k0 > 0 ? k0 : 1);
  SliceLayout s;
  VerifyLayout l{};
  l.params = s.take(sizeof(SeqVerifyParams) * b);
  l.fanout = s.take(sizeof(int32_t) * bk);
  l.rows = s.take(sizeof(const float*) * bk);
  l.target_stats = s.take(sizeof(RowStats) * b * (k0 + 1));
  l.draft_stats = s.take(sizeof(RowStats) * bk);
  l.total = s.total();
  return l;
}

std::string cuda_error(const char* what, cudaError_t err) {
  return err == cudaSuccess ? std::string() : std::string(what) + ": " + cudaGetErrorString(err);
}

// The first error of the calls since the last check (launches report theirs here).
std::string last_error(const char* what) { return cuda_error(what, cudaGetLastError()); }

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
  if (scope.status() != cudaSuccess) return cuda_error("verify: selecting the device", scope.status());
  auto* params = slice_at<SeqVerifyParams>(workspace, l.params);
  auto* fanout = slice_at<int32_t>(workspace, l.fanout);
  auto* rows = slice_at<const float*>(workspace, l.rows);
  auto* tstats = slice_at<RowStats>(workspace, l.target_stats);
  auto* dstats = slice_at<RowStats>(workspace, l.draft_stats);
  // Host arrays (pageable): each copy has read its source when it returns; the kernels below run after it
  // on the same stream.
  const size_t bk = static_cast<size_t>(vb.batch) * vb.k;
  cudaError_t err = cudaMemcpyAsync(params, vb.params, sizeof(SeqVerifyParams) * vb.batch, cudaMemcpyHostToDevice, stream);
  if (err == cudaSuccess && vb.saguaro_fanout && bk > 0)
    err = cudaMemcpyAsync(fanout, vb.saguaro_fanout, sizeof(int32_t) * bk, cudaMemcpyHostToDevice, stream);
  if (err == cudaSuccess && vb.draft_rows && bk > 0)
    err = cudaMemcpyAsync(rows, vb.draft_rows, sizeof(const float*) * bk, cudaMemcpyHostToDevice, stream);
  if (err != cudaSuccess) return cuda_error("verify: copying parameters", err);
  const int64_t blocks = static_cast<int64_t>(vb.batch) * (2 * vb.k + 1);
  const float* const* draft_rows = vb.draft_rows ? rows : nullptr;
  verify_row_stats_kernel<<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(
      vb.target_logits, draft_rows, vb.batch, vb.k, vb.vocab, params, vb.saguaro_fanout ? fanout : nullptr,
      tstats, dstats);
  std::string msg = last_error("verify: row statistics kernel");
  if (!msg.empty()) return msg;
  verify_seq_kernel<<<static_cast<unsigned>(vb.batch), kThreads, 0, stream>>>(
      vb.target_logits, vb.draft_tokens, draft_rows, vb.k, vb.vocab, params, tstats, dstats, result.accept_len,
      result.next_token);
  return last_error("verify: sequence kernel");
}

size_t draft_workspace_bytes(int32_t rows) {
  SliceLayout s;
  s.take(sizeof(DraftRowParams) * static_cast<size_t>(rows > 0 ? rows : 1));
  return s.total();
}

std::string launch_sample_draft(const DraftBatch& batch, const DraftResult& result, void* workspace,
                                size_t workspace_bytes, int device, cudaStream_t stream) {
  if (batch.rows == 0) return std::string();
  if (!workspace || workspace_bytes < draft_workspace_bytes(batch.rows))
    return "sample_draft: workspace of " + std::to_string(workspace_bytes) + " bytes, need " +
           std::to_string(draft_workspace_bytes(batch.rows));
  DeviceScope scope(device);
  if (scope.status() != cudaSuccess) return cuda_error("sample_draft: selecting the device", scope.status());
  auto* params = slice_at<DraftRowParams>(workspace, 0);
  const cudaError_t err =
      cudaMemcpyAsync(params, batch.params, sizeof(DraftRowParams) * batch.rows, cudaMemcpyHostToDevice, stream);
  if (err != cudaSuccess) return cuda_error("sample_draft: copying parameters", err);
  sample_draft_kernel<<<static_cast<unsigned>(batch.rows), kThreads, 0, stream>>>(batch.logits, batch.vocab, params,
                                                                                  result.tokens, result.probs);
  return last_error("sample_draft: kernel");
}

}  // namespace ssd
