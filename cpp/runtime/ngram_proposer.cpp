// ngram_proposer.cpp: see ngram_proposer.h.
#include "ngram_proposer.h"

#include <algorithm>

namespace ssd {

// Latest start i < size - n such that context[i, i+n) equals the last n tokens, or -1.
static int64_t find_latest_match(const std::vector<int32_t>& context, int64_t n) {
  const int64_t size = static_cast<int64_t>(context.size());
  const int32_t* suffix = context.data() + (size - n);
  const int32_t last = suffix[n - 1];
  for (int64_t i = size - n - 1; i >= 0; --i) {
    if (context[i + n - 1] == last && std::equal(suffix, suffix + n - 1, context.data() + i)) return i;
  }
  return -1;
}

std::vector<int32_t> ngram_propose(const std::vector<int32_t>& context, int32_t min_n, int32_t max_n,
                                   int32_t count) {
  std::vector<int32_t> out;
  const int64_t size = static_cast<int64_t>(context.size());
  if (count <= 0) return out;
  const int64_t lo = std::max<int32_t>(min_n, 1);
  for (int64_t n = std::min<int64_t>(max_n, size - 1); n >= lo; --n) {
    const int64_t start = find_latest_match(context, n);
    if (start < 0) continue;
    out.reserve(static_cast<size_t>(count));
    // start + n <= size - 1, so p - size < out.size() once p passes the end: the copy overlaps itself
    for (int64_t p = start + n; static_cast<int32_t>(out.size()) < count; ++p) {
      out.push_back(p < size ? context[p] : out[static_cast<size_t>(p - size)]);
    }
    return out;
  }
  return out;
}

Speculation ngram_speculation(const std::vector<int32_t>& context, const EngineConfig& config,
                              int32_t budget) {
  Speculation spec;
  spec.source = SpecSource::kNgram;
  spec.onehot = true;
  spec.tokens = ngram_propose(context, config.ngram_min_n, config.ngram_n, budget);
  spec.saguaro_f.assign(spec.tokens.size(), 0);
  return spec;
}

}  // namespace ssd
