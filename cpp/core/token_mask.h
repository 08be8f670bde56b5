// token_mask.h: the token-mask math shared by the CPU reference (CpuLogitsOps::apply_masks) and the
// CUDA kernel (cuda/logits_scan_blocks.cuh): a mask is `words` = ceil(V / 32) uint32 words, bit t % 32
// of word t / 32 set = token t allowed (ssdcore/token_masker.h). Applying a mask sets every disallowed
// logit to -inf in place; allowed logits keep their bits, so the sampling math (which already treats
// -inf as probability 0) sees exactly the masked distribution on either device.
//
// Threads: pure functions.
#pragma once
#include <cstdint>

#include "sampling_math.h"

namespace ssd {

// Whether token t is allowed by `mask`.
SSD_HD inline bool mask_allows(const uint32_t* mask, int64_t t) { return ((mask[t >> 5] >> (t & 31)) & 1u) != 0; }

// Number of uint32 words of a mask over `vocab` tokens.
SSD_HD inline int32_t mask_words(int64_t vocab) { return static_cast<int32_t>((vocab + 31) / 32); }

// Whether `mask` allows no token among the first `vocab` (bits past vocab are ignored).
inline bool mask_allows_none(const uint32_t* mask, int64_t vocab) {
  const int64_t full = vocab / 32;
  for (int64_t w = 0; w < full; ++w)
    if (mask[w] != 0) return false;
  const int64_t rest = vocab % 32;
  return rest == 0 || (mask[full] & ((1u << rest) - 1u)) == 0;
}

// Sets row[c] = -inf for every column c < vocab that `mask` does not allow. The CPU reference.
inline void apply_token_mask(float* row, int64_t vocab, const uint32_t* mask) {
  const float neg_inf = neg_inf_f();
  for (int64_t c = 0; c < vocab; ++c)
    if (!mask_allows(mask, c)) row[c] = neg_inf;
}

}  // namespace ssd
