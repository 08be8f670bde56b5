// verify_kernels.h: CUDA verification and draft sampling, the GPU twins of verify_cpu / sample_draft_cpu.
//
// Same structs, same semantics, same results (token ids and accept lengths identical to the CPU reference:
// both use cpp/core/sampling_math.h and the canonical orders described there). Plan:
//   verify:  kernel 1, one 256-thread block per (sequence, row): the RowStats of every target row
//            0..draft_len and every draft row 0..draft_len-1 that verification may need (rows after a
//            rejection are computed too: the GPU has the parallelism, the CPU path skips them).
//            kernel 2, one block per sequence: the ratio tests (one thread), then the residual or bonus
//            sample by the whole block.
//   draft:   one block per row: RowStats with Saguaro, then the sample (and q' when asked).
// Pointers in `batch`/`result` are device pointers EXCEPT batch.params, batch.saguaro_fanout and the
// batch.draft_rows array (host arrays copied into the workspace, stream-ordered; the row pointers in
// draft_rows are device pointers, read in place by the kernels). The workspace is device memory of at least
// *_workspace_bytes(); the caller allocates it (e.g. from torch's caching allocator) and keeps it alive
// until the stream has run the kernels. Launches are asynchronous on `stream`; errors come back as a
// non-empty message (never an exception). Out-of-range tokens never cause out-of-bounds reads (they are
// treated as rejected), but the caller is expected to have validated them.
// Any host thread may call; the kernels run on the CUDA device `device`.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "draft_sampler.h"
#include "verifier.h"

typedef struct CUstream_st* cudaStream_t;

namespace ssd {

size_t verify_workspace_bytes(int32_t batch, int32_t k);
std::string launch_verify(const VerifyBatch& batch, const VerifyResult& result, void* workspace,
                          size_t workspace_bytes, int device, cudaStream_t stream);

size_t draft_workspace_bytes(int32_t rows);
std::string launch_sample_draft(const DraftBatch& batch, const DraftResult& result, void* workspace,
                                size_t workspace_bytes, int device, cudaStream_t stream);

}  // namespace ssd
