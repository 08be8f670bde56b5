// target_worker.h: the target side of the engine, the round loop (SSD_SPEC sections 1 and 2.2).
//
// Each round: admit new requests (prefill, sample their first token), hand the last round's outcomes
// to the draft worker and take one speculation per sequence back (none in ar mode; in draft-free sd,
// where there is no draft worker, n-gram lookup proposals made here: ngram_proposer.h), verify all
// sequences in one target forward, and commit: append tokens, apply stop conditions, stream the new
// tokens as OutputEvents. Errors in the target runner or reported by the draft worker fail the
// sequences of that round (an error event each, naming the side) and the loop goes on. Logits rows
// with NaN or +inf fail just their sequence (ErrorKind::kNonFinite, naming the side and position).
//
// Structured output: right after each forward (prefill, verification) the rows of constrained
// sequences are masked in place (RowMasker, ssdcore/token_masker.h): row i of a verification follows
// the path s_1..s_i. A masker that throws fails the constrained sequences of that forward; a used row
// (i <= accepted) whose mask allows no token fails its sequence; both ErrorKind::kModelRunner.
//
// Verification dispatches on the target logits' device (LogitsBackends) and reads each proposal's q
// row in place, through the handle its Speculation carries: no row is copied between the workers.
//
// Invariants: Sequence::tokens.back() is the pending token and the target KV holds the rest at
// slots == positions; every regular ToDraft sent gets exactly one ToTarget back, with the same round
// (a reply for another round is a protocol error that fails the round); KV lanes are owned by active
// sequences only; every sequence the draft was told about (a warm-up counts) leaves it by an outcome
// with finished set or by `leaves`.
//
// Threads: constructed, started and joined by the Engine; everything else runs on its own thread.
// start() returns once the thread has run the runner's on_worker_start() (pinning, thread count).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "channel.h"
#include "engine_config.h"
#include "logits_ops.h"
#include "messages.h"
#include "forward_batch_builder.h"
#include "model_runner.h"
#include "row_masker.h"
#include "scheduler.h"
#include "stats.h"

namespace ssd {

struct ActiveSequence {
  Sequence seq;
  RequestMetrics metrics;
  int64_t submit_ns = 0;
  int64_t first_token_ns = 0;
  bool stream = true;  // Request::stream
};

class TargetWorker {
 public:
  TargetWorker(const EngineConfig& config, ModelRunner* runner, Stats* stats, Scheduler* scheduler,
               Channel<ToDraft>* to_draft, Channel<ToTarget>* from_draft,
               Channel<OutputEvent>* events, std::vector<int32_t> eos_ids, LogitsBackends ops,
               std::shared_ptr<TokenMasker> masker = nullptr);
  ~TargetWorker();
  // Starts the thread and waits for on_worker_start(); returns its error ("" = started). After an
  // error the thread has ended.
  std::string start();
  void join();

 private:
  void run();
  void round();
  void admit(ToDraft* msg);
  ToTarget exchange(ToDraft msg);
  Logits verify_forward(const ToTarget& specs);
  void decide(const Logits& logits, const ToTarget& specs, ToDraft* next);

  void prefill(std::vector<Request>& requests, ToDraft* msg);
  void warm_draft(const std::vector<Request>& requests);
  void cancel(ToDraft* msg);
  void commit(ActiveSequence& a, const std::vector<int32_t>& decided);
  void finish(int64_t id, FinishReason reason, const std::string& error = "",
              ErrorKind kind = ErrorKind::kNone);
  void fail_all(const std::string& error, ErrorKind kind);
  bool fail_non_finite(const Logits& logits, const BadLogit* bad, int32_t rows, int64_t id, int32_t position);
  void mask(const Logits& logits);
  bool fail_mask(int64_t id, int32_t accepted, int32_t position);

  // A constrained sequence's masking problem in the last forward: the masker threw (local -1) or row
  // `local` allowed no token.
  struct MaskFailure {
    int32_t local = -1;
    std::string error;
  };

  EngineConfig config_;
  ModelRunner* runner_;
  LogitsBackends ops_;  // verification and checks run where the target's logits are
  Stats* stats_;
  Scheduler* scheduler_;
  Channel<ToDraft>* to_draft_;     // null in ar mode and draft-free sd
  Channel<ToTarget>* from_draft_;  // null in ar mode and draft-free sd
  Channel<OutputEvent>* events_;
  std::vector<int32_t> eos_ids_;
  RowMasker masker_;
  std::map<int64_t, MaskFailure> mask_failures_;  // of the last forward; empty unless something failed
  std::map<int64_t, ActiveSequence> active_;
  std::vector<int32_t> free_lanes_;
  ToDraft pending_;                // what the draft has not been told yet
  int64_t round_ = 0;
  int64_t last_verify_[2] = {0, 0};
  std::thread thread_;
};

}  // namespace ssd
