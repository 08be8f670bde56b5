// messages.h: the typed messages that travel between the target worker and the draft worker
// (through Channel<ToDraft> and Channel<ToTarget>, the only path between them), and the events the
// target worker publishes to the caller.
//
// Protocol, one exchange per round t:
//   target -> draft   ToDraft{t}: joins (new sequences, with their first pending token), outcomes of
//                     round t-1 (k accepted, tokens decided), sequences that left
//   draft  -> target  ToTarget{t}: one Speculation per active sequence (cache hit or backup), or an
//                     error; then the draft pre-speculates round t+1 while the target verifies round t.
// Exactly one reply per regular ToDraft, carrying its round number; a warm-up (warm_only) gets none.
// Draft failures are per sequence: a reply lists the sequences the draft failed (and forgot) with the
// error. A failure outside the serving of a round (a warm-up prefill, a pre-speculation after the
// reply) sends no extra message: the draft keeps the list and reports it in its next reply, so the
// channel never holds a reply nobody asked for and a later request never sees an older failure.
// Messages own their data (plain values and shared_ptr to immutable proposal rows), so whoever pops
// one may use it freely.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "sequence.h"
#include "speculation.h"

namespace ssd {

// Why a request failed, and what it measured: the public types (ssdcore/request.h).
using ErrorKind = ssdcore::ErrorKind;
using RequestMetrics = ssdcore::RequestMetrics;

struct DraftJoin {
  int64_t seq_id = -1;
  int32_t lane = -1;
  int32_t prompt_len = 0;       // tokens[0, prompt_len) are the prompt (the rest were generated)
  std::vector<int32_t> tokens;  // prompt + the first pending token
  SamplingParams params;
};

struct SeqOutcome {
  int64_t seq_id = -1;
  int32_t accepted = 0;          // k: drafted tokens accepted
  std::vector<int32_t> decided;  // s_1..s_k then r' (as decided, before stop conditions)
  bool finished = false;         // the sequence leaves after this round
};

struct ToDraft {
  int64_t round = 0;
  std::vector<DraftJoin> joins;
  std::vector<SeqOutcome> outcomes;
  std::vector<int64_t> leaves;   // cancelled or failed sequences
  double verify_seconds = 0.0;   // the target's last verification time (for the backup chooser)
  // A warm-up, sent before the target prefills `joins` (whose tokens are then the prompts alone): the
  // draft prefills the same prompts meanwhile, and sends no reply. The joins come again, with the first
  // token, in the next regular message.
  bool warm_only = false;
};

struct ToTarget {
  int64_t round = 0;
  std::vector<std::pair<int64_t, Speculation>> specs;
  // Sequences the draft side failed (this round or since its last reply); the target fails them with
  // `error`. They have no entry in `specs`.
  std::vector<int64_t> failed;
  std::string error;
  ErrorKind error_kind = ErrorKind::kNone;
  // The draft's previous pre-speculation interval (steady clock ns; 0 = none), so the target can
  // measure how much of it overlapped its verification of that round.
  int64_t prespec_start_ns = 0;
  int64_t prespec_end_ns = 0;
};

// Bytes a message moves between the workers: the struct and the arrays it owns (token ids, accept
// lengths, sequence ids, row handles, error text). A speculation's q rows are handles (LogitsRow) to
// the draft's logits, read in place by verification, so no term grows with V.
inline std::uint64_t wire_bytes(const ToDraft& m) {
  std::uint64_t n = sizeof(ToDraft) + m.leaves.size() * sizeof(int64_t);
  for (const DraftJoin& j : m.joins) {
    n += sizeof(DraftJoin) + (j.tokens.size() + j.params.stop_token_ids.size()) * sizeof(int32_t);
  }
  for (const SeqOutcome& o : m.outcomes) n += sizeof(SeqOutcome) + o.decided.size() * sizeof(int32_t);
  return n;
}
inline std::uint64_t wire_bytes(const ToTarget& m) {
  std::uint64_t n = sizeof(ToTarget) + m.failed.size() * sizeof(int64_t) + m.error.size();
  for (const auto& entry : m.specs) {
    const Speculation& s = entry.second;
    n += sizeof(entry) + (s.tokens.size() + s.saguaro_f.size()) * sizeof(int32_t) + s.q.size() * sizeof(LogitsRow);
  }
  return n;
}

struct OutputEvent {
  int64_t seq_id = -1;
  std::vector<int32_t> tokens;  // newly decided tokens (in order)
  FinishReason finish = FinishReason::kNone;
  std::string error;
  ErrorKind error_kind = ErrorKind::kNone;  // set when finish == kError
  RequestMetrics metrics;       // valid when finish != kNone
};

}  // namespace ssd
