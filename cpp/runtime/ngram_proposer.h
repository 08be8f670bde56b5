// ngram_proposer.h: the `ngram` backup (SSD_SPEC section 6): propose the tokens that followed the
// most recent earlier occurrence of the context's last n tokens (trying n = max_n down to 1).
// Deterministic, so verification treats the proposals as one-hot q. Pure function; any thread.
#pragma once
#include <cstdint>
#include <vector>

namespace ssd {

// Returns up to `count` proposed tokens (possibly none) continuing `context`.
std::vector<int32_t> ngram_propose(const std::vector<int32_t>& context, int32_t max_n, int32_t count);

}  // namespace ssd
