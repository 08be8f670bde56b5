// cuda_logits_ops.h: the LogitsOps for logits in CUDA device memory (logits_ops.h): launch_verify and
// launch_sample_draft (verify_kernels.h) and the scans of logits_scan_blocks.cuh, queued on the
// Logits' stream; only parameters go to the device and only token ids, accept lengths and bad columns
// come back (each op synchronizes its stream before returning). Results equal CpuLogitsOps' bit for bit.
// The object owns one device buffer (grown on demand) and is used by one worker thread at a time.
#pragma once
#include <memory>

#include "logits_ops.h"

namespace ssd {

std::shared_ptr<LogitsOps> make_cuda_logits_ops();

}  // namespace ssd
