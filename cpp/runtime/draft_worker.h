// draft_worker.h: the draft side of SSD (SSD_SPEC sections 2.1, 3, 6), on its own thread.
//
// Each round the worker (1) applies what the target decided (joins, outcomes, leaves), (2) serves one
// speculation per active sequence: the speculation cache's entry for the real outcome (k, r') on a
// hit, else the backup (jit: the draft drafts now, batched over the sequences that missed; ngram:
// context lookup with one-hot q; none: no proposals), then hands them to the target, and (3) in ssd
// mode pre-speculates the next round while the target verifies: glue forward over [r, s_1..s_n],
// fork the top-F_j tokens of each g_j, decode all branches K steps in one batched tree forward per
// step, and populate the cache. In sd mode step (3) is skipped, so every round is served by jit.
//
// Invariants: DraftSequence::kv holds the tokens whose draft KV is valid in context slots
// [0, kv.size()); it is always a prefix of tokens (decided tokens) or of tokens + the speculation
// being verified. Branch KV lives in scratch slots [max_context, max_context + F*K) of the lane and
// is never reused across rounds. Every proposal carries a handle to exactly the logits row it was
// sampled from (LogitsRow), never a copy.
//
// Replies: exactly one ToTarget per regular ToDraft, with its round (messages.h). On a failure the
// worker forgets every sequence it knows and lists them as failed: in the reply still owed for the
// message at hand, else (a warm-up prefill, a pre-speculation after the reply went out) in the next
// reply, which serves the sequences that joined since as usual.
//
// Structured output: every draft forward whose rows are sampled or ranked (jit steps, glue, tree steps)
// masks the rows of constrained sequences in place right after it runs (RowMasker): glue row j follows
// s_1..s_j, branch (j, c) at step t follows s_1..s_j, c and its own first t tokens. A row whose mask
// allows nothing stays unmasked (the target rejects what it forbids); a masker that throws is a draft
// failure. n-gram proposals are one-hot: nothing to mask.
//
// Backup `auto` (BackupChooser) and geometric fan-out (FanOutPlanner) learn from what the worker sees
// each round: the outcomes the target reports with its verification time, and the worker's own
// pre-speculation and backup times; never from Stats, which a user may reset.
//
// Threads: constructed and joined by the Engine; everything else runs on the worker thread. The only
// inputs are the Channel<ToDraft>; the only outputs are the Channel<ToTarget> and Stats. start()
// returns once the thread has run the runner's on_worker_start().
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <memory>
#include <thread>
#include <vector>

#include "backup_chooser.h"
#include "channel.h"
#include "engine_config.h"
#include "fan_out_planner.h"
#include "forward_batch_builder.h"
#include "logits_ops.h"
#include "messages.h"
#include "model_runner.h"
#include "row_masker.h"
#include "speculation_cache.h"
#include "stats.h"

namespace ssd {

struct DraftSequence {
  int64_t id = -1;
  int32_t lane = -1;
  int32_t prompt_len = 0;       // tokens[0, prompt_len) are the prompt
  std::vector<int32_t> tokens;  // decided tokens; tokens.back() is the pending token r
  std::vector<int32_t> kv;      // tokens whose KV is in context slots [0, kv.size())
  SamplingParams params;
  Speculation current;          // the speculation handed to the target this round
  std::vector<int32_t> plan;    // fan-out used when `current`'s successors were pre-speculated
  int32_t max_tokens_left = 0;  // tokens the request may still produce after the pending one
};

// One draft sample: which logits row, whose parameters, the position of the sampled token and the
// Saguaro top-set size for it.
struct DraftDraw {
  int64_t row = 0;
  const SamplingParams* params = nullptr;
  int32_t position = 0;
  int32_t saguaro_f = 0;
};

// One speculation drafted by DraftWorker::decode_steps: `length` tokens appended to *spec for *seq;
// the token drawn at step t sits at logical position pos0 + t + 1 and is sampled with Saguaro
// F = (*plan)[t] (0 past the plan). tag is the caller's (the tree's branch index). The speculative
// path before the decoding's own tokens, for masking, is path0[0, n_path0) then fork_token if >= 0
// (a tree branch (j, c): s_1..s_j, c; jit: none).
struct Decoding {
  DraftSequence* seq = nullptr;
  Speculation* spec = nullptr;
  int32_t length = 0;
  int32_t pos0 = 0;
  const std::vector<int32_t>* plan = nullptr;
  size_t tag = 0;
  const int32_t* path0 = nullptr;
  int32_t n_path0 = 0;
  int32_t fork_token = -1;
};

// Adds decoding d's forward rows for step t to req; the last one asks for logits row out_row.
using StepRows = std::function<void(Decoding& d, int32_t t, int32_t out_row, ForwardBatchBuilder* req)>;

class DraftWorker {
 public:
  DraftWorker(const EngineConfig& config, ModelRunner* runner, Stats* stats,
              Channel<ToDraft>* inbox, Channel<ToTarget>* outbox, LogitsBackends ops,
              std::shared_ptr<TokenMasker> masker = nullptr);
  ~DraftWorker();
  // Starts the thread and waits for on_worker_start(); returns its error ("" = started). After an
  // error the thread has ended.
  std::string start();
  void join();

 private:
  void run();
  void handle(ToDraft& msg);
  void fail(const ToDraft& msg, const std::string& error, ErrorKind kind);
  ToTarget take_failures();
  void round(ToDraft& msg);
  void observe_round(const ToDraft& msg);
  void apply(const ToDraft& msg);
  void warm(const ToDraft& msg);
  ToTarget serve(const ToDraft& msg);
  void prespeculate();

  // Backups and drafting (draft_backup.cpp).
  void serve_misses(size_t batch, const std::vector<DraftSequence*>& missed);
  Backup choose_backup(size_t batch);
  void draft_jit(const std::vector<DraftSequence*>& seqs, std::vector<Speculation>* out);
  Speculation draft_ngram(const DraftSequence& seq) const;
  int32_t proposal_budget(const DraftSequence& seq, int32_t extra_decided) const;

  // The draft step loop and its sampler (draft_decode.cpp).
  void decode_steps(std::vector<Decoding>& decodings, int32_t extra_width, const StepRows& rows);
  std::vector<int32_t> draw(const Logits& logits, const std::vector<DraftDraw>& draws,
                            const std::vector<char>& emptied) const;
  void mask_row(const DraftSequence& s, int64_t out_row, const int32_t* path, int32_t n_path);

  // Tree pre-speculation pieces (draft_tree.cpp).
  // emptied[r] = 1: glue row r is a constrained row with no finite entry left (no branch forks from it).
  Logits glue_forward(const std::vector<DraftSequence*>& seqs, std::vector<int32_t>* row0,
                      std::vector<char>* emptied);
  void tree_decode(const std::vector<DraftSequence*>& seqs, const Logits& glue,
                   const std::vector<char>& emptied,
                   const std::vector<int32_t>& row0);

  EngineConfig config_;
  ModelRunner* runner_;
  LogitsBackends ops_;  // sampling, fork and checks run where the draft's logits are
  Stats* stats_;
  RowMasker masker_;    // constrained rows of the forward at hand
  Channel<ToDraft>* inbox_;
  Channel<ToTarget>* outbox_;
  SpeculationCache cache_;
  FanOutPlanner planner_;
  BackupChooser chooser_;
  std::map<int64_t, DraftSequence> seqs_;
  int64_t last_prespec_[2] = {0, 0};  // the latest pre-speculation window, until a round reports it
  RoundObservation last_round_;       // what this worker measured in its last round (backup, times)
  bool replied_ = false;              // the current message's reply has gone out
  ToTarget failed_;                   // failures since the last reply: failed, error, error_kind
  std::thread thread_;
};

}  // namespace ssd
