// speculation.h: Speculation, the proposal for one sequence for one round.
//
// Concept (SSD_SPEC sections 0-2): the tokens s1..sn (n = 0..K) the target will verify after the
// sequence's pending token, plus the proposal distributions q_1..q_n they were drawn from, because
// verification must use exactly those (SSD_SPEC section 1). A speculation is either
//   - onehot = true: deterministic proposals (n-gram backup): q_i is the one-hot at tokens[i]; no rows;
//   - onehot = false: sampled proposals. The draft logits rows they were sampled from (before the
//     sampling transforms, which verification recomputes from the request's draft SamplingTransform and
//     saguaro_f) are located by ONE of
//       q:                 an owned, immutable-once-published host buffer of n rows x V floats
//                          (row i is tokens[i]'s), shared so messages stay cheap to copy; or
//       q_block, q_row0:   an opaque handle into row buffers the engine owns (e.g. on a device):
//                          rows q_row0 .. q_row0 + n - 1 of block q_block; q_block = -1 when unused.
// saguaro_f[i] is the Saguaro top-set size F used when sampling tokens[i] (0 = no down-weighting);
// empty means all 0. source records how the speculation was made.
// An empty speculation (n = 0, e.g. backup "none") needs no rows whatever onehot says.
//
// Invariants (checked by valid(K)): tokens.size() <= K, tokens >= 0; saguaro_f empty or one per
// token, each >= 0; when onehot: no q and q_block == -1; when sampled with n > 0: q non-null or
// q_block >= 0 (with q_row0 >= 0), unless greedy (made for a temperature-0 request, whose
// verification compares each token with the target's argmax and reads no q).
//
// Threads: a plain value type (moved or copied through Channels); no synchronization of its own. The
// q buffer must not be written once the speculation is handed to another thread.
#pragma once
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

namespace ssd {

enum class SpecSource : std::uint8_t {
  kCacheHit,  // pre-speculated by the draft during the previous verification (SSD hit)
  kJit,       // backup: the draft drafted it just in time after a miss
  kNgram,     // backup: prompt/context n-gram lookup (one-hot)
  kNone,      // backup: nothing speculated (0 tokens; the round yields 1 token)
  kSdDraft,   // plain SD: the draft drafted it synchronously
};
inline constexpr int kNumSpecSources = 5;

inline const char* to_string(SpecSource s) {
  switch (s) {
    case SpecSource::kCacheHit: return "cache_hit";
    case SpecSource::kJit: return "jit";
    case SpecSource::kNgram: return "ngram";
    case SpecSource::kNone: return "none";
    case SpecSource::kSdDraft: return "sd_draft";
  }
  return "?";
}

struct Speculation {
  std::vector<std::int32_t> tokens;         // proposed tokens s1..sn, n = 0..K
  bool onehot = false;                      // deterministic proposals (q_i one-hot at tokens[i])
  std::shared_ptr<std::vector<float>> q;    // n x V draft logits rows (host), or null (onehot, greedy)
  bool greedy = false;                      // for a greedy request: the draft keeps no q (needs_q)
  std::int32_t q_block = -1;                // engine-owned row block holding the rows, or -1
  std::int32_t q_row0 = 0;                  // first row of tokens[0] in q_block
  std::vector<std::int32_t> saguaro_f;      // per token: Saguaro top-set size (empty = all 0)
  SpecSource source = SpecSource::kNone;

  std::size_t size() const { return tokens.size(); }
  bool empty() const { return tokens.empty(); }
  bool has_rows() const { return q != nullptr || q_block >= 0; }

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
    if (q_row0 < 0) return false;
    if (onehot) return q == nullptr && q_block == -1;
    return tokens.empty() || greedy || has_rows();
  }

  // Deterministic proposals (e.g. n-gram), or an empty speculation.
  static Speculation make_onehot(std::vector<std::int32_t> toks, SpecSource src) {
    Speculation s;
    s.tokens = std::move(toks);
    s.onehot = true;
    s.source = src;
    return s;
  }
  // Sampled proposals whose rows live in an owned host buffer (n x V floats).
  static Speculation make_sampled(std::vector<std::int32_t> toks, std::shared_ptr<std::vector<float>> rows,
                                  SpecSource src) {
    Speculation s;
    s.tokens = std::move(toks);
    s.q = std::move(rows);
    s.source = src;
    return s;
  }
  // Sampled proposals whose rows are q_row0.. of the engine-owned block `block`.
  static Speculation make_sampled_in_block(std::vector<std::int32_t> toks, std::int32_t block,
                                           std::int32_t row0, SpecSource src) {
    Speculation s;
    s.tokens = std::move(toks);
    s.q_block = block;
    s.q_row0 = row0;
    s.source = src;
    return s;
  }
};

}  // namespace ssd
