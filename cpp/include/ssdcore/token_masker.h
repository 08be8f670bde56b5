// ssdcore/token_masker.h: ssdcore::TokenMasker, the interface through which an application constrains
// the tokens a request may produce (structured output: a JSON schema, a regex, a grammar), and MaskRow,
// the context of one logits row it is asked about.
//
// A request opts in with SamplingParams::constraint > 0, the masker's own key for that request's
// grammar; an Engine built without a TokenMasker rejects such requests. Right after every forward whose
// rows it uses, the engine asks the masker for the tokens allowed after each constrained row's context
// and sets the logits of every other token to -inf in place (ssdcore/model_runner.h allows it), before
// anything reads the row. So the target's distribution is the masked one, verification tests each draft
// token against the masked p, and the draft proposes from its masked q (jit drafting, the SSD glue,
// fork and tree steps: each branch is asked about with its own path). Output stays exact: greedy ssd,
// sd and ar give the same tokens, sampled output follows the masked target distribution.
//
// Context of a row: `generated` are the tokens decided after the prompt as the calling side knows them
// (the last one is the token the target sampled last and that is not yet in the KV), `path` the
// speculative tokens after them that the row's logits follow (not decided: they may leave the grammar).
//
// Rows whose mask allows no token:
//   - target side: the request fails (ErrorKind::kModelRunner, "the constraint allows no token at
//     position P") if the row is actually used, i.e. its path was accepted; a row after a rejected draft
//     token is never used and is ignored.
//   - draft side: the row is left unmasked, the draft may propose anything there (the target rejects
//     what its own mask forbids), so a wrong draft-side mask costs speed, never exactness.
// EOS: a constrained request finishes when its grammar completes, so the masker allows the EOS id(s)
// there and only there; SamplingParams::validate() rejects ignore_eos together with a constraint.
//
// Errors: fill_masks may throw (any std::exception). On the target side the constrained requests of
// that forward fail (ErrorKind::kModelRunner, "target token masker failed: ..."), the others go on; on
// the draft side it is a draft failure (every request the draft knows fails, as for a draft runner
// error). The engine stays usable either way.
//
// Threads: the target worker calls fill_masks with side 0 and the draft worker with side 1,
// concurrently; a masker keeps separate state per side (or locks). Never called by other threads. The
// masker must outlive the Engine (the Engine holds a shared_ptr to it).
#pragma once
#include <cstdint>

namespace ssdcore {

// The context of one logits row whose next-token set is constrained.
struct MaskRow {
  std::int64_t constraint = 0;             // the request's SamplingParams::constraint (> 0)
  const std::int32_t* generated = nullptr; // tokens decided after the prompt, as the calling side knows them
  std::int32_t n_generated = 0;
  const std::int32_t* path = nullptr;      // speculative tokens after them (not decided)
  std::int32_t n_path = 0;
};

class TokenMasker {
 public:
  virtual ~TokenMasker() = default;
  // For each row i writes the tokens allowed after generated + path into masks + i * words: bit t % 32
  // of word t / 32 set = token t allowed; words = ceil(vocab / 32). The masks arrive zero-filled.
  // side: 0 = target worker, 1 = draft worker; the two sides call concurrently and keep separate state.
  // A row whose path leaves the grammar, or an unknown constraint (a request that already finished), may
  // get any mask with at least one bit set.
  virtual void fill_masks(int side, const MaskRow* rows, std::int32_t n, std::uint32_t* masks,
                          std::int32_t words) = 0;
};

}  // namespace ssdcore
