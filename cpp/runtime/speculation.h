// speculation.h: Speculation, the proposal for one sequence for one round.
//
// Concept (SSD_SPEC sections 0-2): the tokens s1..sn (n = 0..K) the target will verify after the
// sequence's pending token, plus the proposal distributions q_1..q_n they were drawn from, because
// verification must use exactly those (SSD_SPEC section 1). A speculation is either
//   - onehot = true: deterministic proposals (n-gram backup): q_i is the one-hot at tokens[i]; no rows;
//   - onehot = false: sampled proposals. q[i] is a handle to the draft logits row tokens[i] was sampled
//     from (before the sampling transforms, which verification recomputes from the request's draft
//     SamplingTransform and saguaro_f): the draft forward's own Logits, kept alive by its owner, plus the
//     row index. The rows stay where the draft produced them (host or device) and are never copied:
//     verification reads them in place (logits_ops.h).
// saguaro_f[i] is the Saguaro top-set size F used when sampling tokens[i] (0 = no down-weighting);
// empty means all 0. source records how the speculation was made.
// An empty speculation (n = 0, e.g. backup "none") needs no rows whatever onehot says.
//
// Invariants (checked by valid(K)): tokens.size() <= K, tokens >= 0; saguaro_f empty or one per
// token, each >= 0; when onehot: no q; when sampled with n > 0: one q row per token, unless greedy (made for a temperature-0 request, whose
// verification compares each token with the target's argmax and reads no q).
//
// proposal_budget() is the one rule for how many tokens a speculation may propose.
//
// Threads: a plain value type (moved or copied through Channels); no synchronization of its own. The
// rows q refers to are never written once a proposal refers to them (structured output masks a row
// right after its forward, before anything is drawn from it).
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "model_runner.h"
#include "ssdcore/stats.h"

namespace ssd {

// How a speculation was made: the public enumeration (ssdcore/stats.h).
using ssdcore::SpecSource;
using ssdcore::kNumSpecSources;
using ssdcore::to_string;

struct Speculation {
  std::vector<std::int32_t> tokens;         // proposed tokens s1..sn, n = 0..K
  bool onehot = false;                      // deterministic proposals (q_i one-hot at tokens[i])
  std::vector<LogitsRow> q;                 // per token: its draft logits row, or empty (onehot, greedy)
  bool greedy = false;                      // for a greedy request: the draft keeps no q (needs_q)
  std::vector<std::int32_t> saguaro_f;      // per token: Saguaro top-set size (empty = all 0)
  SpecSource source = SpecSource::kNone;

  std::size_t size() const { return tokens.size(); }
  bool empty() const { return tokens.empty(); }
  bool has_rows() const { return !q.empty(); }

  // The invariants above, for draft length K.
  bool valid(int K) const {
    if (K < 0 || tokens.size() > static_cast<std::size_t>(K)) return false;
    for (std::int32_t t : tokens) {
      if (t < 0) return false;
    }
    if (!saguaro_f.empty() && saguaro_f.size() != tokens.size()) return false;
    for (std::int32_t f : saguaro_f) {
      if (f < 0) return false;
    }
    if (onehot) return q.empty();
    if (has_rows() && q.size() != tokens.size()) return false;
    return tokens.empty() || greedy || has_rows();
  }
};

// The most tokens a speculation may propose for a sequence whose pending token sits at
// `pending_position` and that may still produce `tokens_left` tokens after it: K, and no more than the
// context and the request's length leave room for (a round decides accepted + 1 tokens).
inline int32_t proposal_budget(int32_t K, int32_t max_context, int32_t pending_position, int32_t tokens_left) {
  return std::max(0, std::min({K, max_context - 1 - pending_position, tokens_left - 1}));
}

}  // namespace ssd
