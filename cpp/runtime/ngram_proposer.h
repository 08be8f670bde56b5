// ngram_proposer.h: prompt lookup (SSD_SPEC section 6's `ngram` backup, and draft-free sd): propose the
// tokens that followed the most recent earlier occurrence of the context's last n tokens.
//
// Rule: try n = max_n down to min_n (longest match first); for the first n with a match, take the
// latest start i < size - n where context[i, i+n) equals the last n tokens, and copy what follows it,
// up to `count` tokens. The copy may run past the end of the context into the tokens it has just
// proposed (as LZ77 does), so a repeating pattern is proposed for the full `count` even when its last
// occurrence is recent. No match of any length in [min_n, max_n]: no proposals.
//
// Proposals are deterministic, so verification treats them as one-hot q (SSD_SPEC section 1).
// Cost: a backward scan, O(size * n) per tried n in the worst case and about `size` comparisons in
// practice (a few microseconds for a 1024-token context), with no state kept between calls.
//
// Threads: pure function; any thread.
#pragma once
#include <cstdint>
#include <vector>

#include "engine_config.h"
#include "speculation.h"

namespace ssd {

// Up to `count` proposed tokens (possibly none) continuing `context`; min_n >= 1 (smaller values act
// as 1), max_n < min_n proposes nothing.
std::vector<int32_t> ngram_propose(const std::vector<int32_t>& context, int32_t min_n, int32_t max_n,
                                   int32_t count);

// The speculation of a sequence whose decided tokens are `context` (pending token last): at most
// `budget` one-hot proposals by ngram_propose with config.ngram_min_n..ngram_n, source kNgram. Used by
// the draft worker's ngram backup and by the target worker in draft-free sd.
Speculation ngram_speculation(const std::vector<int32_t>& context, const EngineConfig& config,
                              int32_t budget);

}  // namespace ssd
