// sequence.h: one generation request as the runtime sees it.
//
// `tokens` holds the prompt followed by every token decided so far; once the request has been
// prefilled, tokens.back() is the pending token r (sampled by the target, not yet in the target's KV
// cache), so the target's KV holds exactly tokens.size() - 1 entries. Tokens are only ever appended
// through commit(), which applies the stop conditions (EOS ids unless ignore_eos, stop token ids,
// max_tokens); stop strings need the tokenizer and are handled by the Python layer, which cancels.
//
// Threads: a Sequence is owned by the target worker; the draft worker keeps its own DraftSequence.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "sampling_params.h"
#include "ssdcore/request.h"

namespace ssd {

using FinishReason = ssdcore::FinishReason;  // ssdcore/request.h

struct Sequence {
  int64_t id = -1;
  int32_t lane = -1;
  int32_t prompt_len = 0;
  std::vector<int32_t> tokens;
  SamplingParams params;
  FinishReason finish = FinishReason::kNone;
  int32_t rounds = 0;
  int32_t accepted_drafts = 0;  // drafted tokens accepted over all rounds

  int32_t generated() const { return static_cast<int32_t>(tokens.size()) - prompt_len; }
  // Position of the pending token r (= number of tokens in the target's KV).
  int32_t pending_position() const { return static_cast<int32_t>(tokens.size()) - 1; }
  bool finished() const { return finish != FinishReason::kNone; }

  // Appends decided tokens in order until a stop condition fires; returns how many were appended.
  // An EOS / stop token ends the request and is not appended (it is not part of the output).
  int32_t commit(const int32_t* decided, int32_t n, const std::vector<int32_t>& eos_ids);
};

}  // namespace ssd
