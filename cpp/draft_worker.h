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
// is never reused across rounds. Every proposal carries exactly the logits it was sampled from.
//
// Replies: exactly one ToTarget per regular ToDraft, with its round (messages.h). On a failure the
// worker forgets every sequence it knows and lists them as failed: in the reply still owed for the
// message at hand, else (a warm-up prefill, a pre-speculation after the reply went out) in the next
// reply, which serves the sequences that joined since as usual.
//
// Threads: constructed and joined by the Engine; everything else runs on the worker thread. The only
// inputs are the Channel<ToDraft>; the only outputs are the Channel<ToTarget> and Stats. start()
// returns once the thread has run the runner's on_worker_start().
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <memory>
#include <thread>
#include <vector>

#include "backup_chooser.h"
#include "channel.h"
#include "engine_config.h"
#include "fan_out_planner.h"
#include "messages.h"
#include "model_runner.h"
#include "speculation_cache.h"
#include "stats.h"

namespace ssd {

struct DraftSequence {
  int64_t id = -1;
  int32_t lane = -1;
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

class DraftWorker {
 public:
  DraftWorker(const EngineConfig& config, ModelRunner* runner, Stats* stats,
              Channel<ToDraft>* inbox, Channel<ToTarget>* outbox);
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
  void apply(const ToDraft& msg);
  void warm(const ToDraft& msg);
  ToTarget serve(const ToDraft& msg);
  void prespeculate();

  // Backups and drafting (draft_backup.cpp).
  void serve_misses(size_t batch, const std::vector<DraftSequence*>& missed, double verify_seconds);
  Backup choose_backup(size_t batch, double verify_seconds);
  void draft_jit(const std::vector<DraftSequence*>& seqs, std::vector<Speculation>* out);
  Speculation draft_ngram(const DraftSequence& seq) const;
  int32_t proposal_budget(const DraftSequence& seq, int32_t extra_decided) const;
  std::vector<int32_t> draw(const Logits& logits, const std::vector<DraftDraw>& draws) const;
  static void check_finite(const Logits& logits, int64_t row, int32_t position);

  // Tree pre-speculation pieces (draft_tree.cpp).
  Logits glue_forward(const std::vector<DraftSequence*>& seqs, std::vector<int32_t>* row0);
  void tree_decode(const std::vector<DraftSequence*>& seqs, const Logits& glue,
                   const std::vector<int32_t>& row0);

  EngineConfig config_;
  ModelRunner* runner_;
  Stats* stats_;
  Channel<ToDraft>* inbox_;
  Channel<ToTarget>* outbox_;
  SpeculationCache cache_;
  FanOutPlanner planner_;
  BackupChooser chooser_;
  std::map<int64_t, DraftSequence> seqs_;
  int64_t last_prespec_[2] = {0, 0};  // the latest pre-speculation window, until a round reports it
  bool replied_ = false;              // the current message's reply has gone out
  ToTarget failed_;                   // failures since the last reply: failed, error, error_kind
  std::thread thread_;
};

}  // namespace ssd
