// ngram_proposer.cpp: see ngram_proposer.h.
#include "ngram_proposer.h"

#include <algorithm>

namespace ssd {

// Latest start i < size - n such that context[i, i+n) equals the last n tokens, or -1.
static int64_t find_latest_match(const std::vector<int32_t>& context, int64_t n) {
  const int64_t size = static_cast<int64_t>(context.size());
  const int32_t* suffix = context.data() + (size - n);
  for (int64_t i = size - n - 1; i >= 0; --i) {
    if (std::equal(suffix, suffix + n, context.data() + i)) return i;
  }
  return -1;
}

std::vector<int32_t> ngram_propose(const std::vector<int32_t>& context, int32_t max_n, int32_t count) {
  std::vector<int32_t> out;
  const int64_t size = static_cast<int64_t>(context.size());
  if (count <= 0) return out;
  for (int64_t n = std::min<int64_t>(max_n, size - 1); n >= 1; --n) {
    int64_t start = find_latest_match(context, n);
    if (start < 0) continue;
    for (int64_t p = start + n; p < size && static_cast<int32_t>(out.size()) < count; ++p) {
      out.push_back(context[p]);
    }
    return out;
  }
  return out;
}

}  // namespace ssd
