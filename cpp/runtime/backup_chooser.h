// backup_chooser.h: BackupChooser, which backup `auto` uses on a cache miss, and the throughput model.
//
// Concept (SSD_SPEC section 6): on a round where some sequence missed the speculation cache, the
// missed sequences get a backup speculation: jit (the draft drafts now: good proposals, K draft steps
// on the critical path), ngram (near-free, usually rejected) or none (nothing; the round yields one
// token for them). With per-sequence hit probability p, batch B, expected tokens per sequence-round on
// a hit / with a backup E_hit / E_b, draft pre-speculation time T_p and backup time T_b (both in units
// of one target verification), expected tokens per verify-time per sequence are
//
//     speedup = [p E_hit + (1-p) E_b] / [q max(1, T_p) + (1-q)(1 + T_b)],   q = p^B
//
// (q is the chance that the whole batch hit; for B = 1 this is exactly the paper's formula).
// choose(batch) returns the backup with the highest modelled speedup among jit, ngram and none. Its
// terms are exponentially weighted means (the first samples are plain averages) of what the draft
// worker observes once per round (observe(RoundObservation): the outcomes the target reported, the
// verification time, and the draft's own pre-speculation and backup times); they never depend on
// the engine's Stats, which a user may reset at any time.
//
// Before measurements exist it follows the paper's rule as a prior: jit when B <= auto_jit_max_batch,
// else ngram. Warm-up: the prior until min_samples rounds were seen; then the prior backup until it
// has min_samples measurements, then the other of jit/ngram until it has too (none needs none:
// E_none = 1, T_none ~ 0). After warm-up, every explore_period-th choice returns the other one of
// jit/ngram (when the best is none: the less-measured one) so its estimates stay fresh (0 disables).
// choose() is deterministic (no randomness).
//
// Threads: not synchronized. The draft worker owns its chooser and is its only caller (it chooses the
// backup for the misses it serves, on its own thread).
#pragma once
#include <array>
#include <cstdint>

#include "engine_config.h"

namespace ssd {

// The model above; inputs are clamped to their domains (p to [0, 1], times and tokens to >= 0,
// batch to >= 1). Returns expected tokens per target-verify time per sequence (AR = 1).
double expected_speedup(double p_hit, double e_hit, double e_miss, double t_p, double t_b, int batch = 1);

// What one target round measured (fill what applies; zeros are fine for phases that did not run).
struct RoundObservation {
  int batch = 0;                  // sequences verified this round (>= 1 to count)
  int hits = 0;                   // of them, cache hits
  int hit_tokens = 0;             // tokens committed by the hit sequences
  double verify_ns = 0;           // target verification time
  double prespec_ns = 0;          // draft pre-speculation (glue + fork + tree) for this round
  Backup backup = Backup::kNone;  // backup that served the misses (jit/ngram/none; ignored if no miss)
  int backup_tokens = 0;          // tokens committed by the missed sequences
  double backup_ns = 0;           // critical-path time spent making their speculations
};

struct BackupChooserOptions {
  int min_samples = 8;        // observations before the model replaces the prior (per backup too)
  int explore_period = 64;    // refresh the unchosen backup every this-many choices (0 = never)
  double ew_alpha = 1.0 / 32; // weight of a new sample in the moving averages
};

class BackupChooser {
 public:
  // Everything the model needs (times in ns; slots: 0 jit, 1 ngram, 2 none).
  struct Estimates {
    std::int64_t rounds = 0;                       // rounds seen
    double p_hit = 0;                              // per-sequence hit rate
    double e_hit = 0;                              // tokens per hit sequence-round (0 = unknown)
    double t_verify_ns = 0;                        // 0 = unknown
    double t_prespec_ns = 0;
    std::array<std::int64_t, 3> backup_samples{};  // measurements per backup
    std::array<double, 3> e_backup{};              // tokens per missed sequence-round
    std::array<double, 3> t_backup_ns{};           // backup time per miss round
  };

  explicit BackupChooser(int auto_jit_max_batch, BackupChooserOptions opts = {});
  BackupChooser(const BackupChooser&) = delete;
  BackupChooser& operator=(const BackupChooser&) = delete;

  void observe(const RoundObservation& obs);
  // Backup for a round with misses at batch size `batch`: kJit, kNgram or kNone (never kAuto).
  Backup choose(int batch);
  // The paper's rule: kJit when batch <= auto_jit_max_batch, else kNgram.
  Backup prior(int batch) const;
  // Modelled speedup of backup b at this batch size with the online estimates (unmeasured terms use
  // rough guesses: E_jit ~ E_hit, T_jit ~ T_p, E_ngram ~ 1, T_ngram ~ 0).
  double predicted_speedup(Backup b, int batch) const;
  static double predicted_speedup(Backup b, int batch, const Estimates& e);

  Estimates estimates() const;  // the online estimates

 private:
  struct Mean {
    double value = 0;
    std::int64_t n = 0;
    void add(double x, double alpha);
  };
  static int slot(Backup b);  // jit 0, ngram 1, none 2
  Backup decide(int batch, const Estimates& e);

  const int auto_jit_max_batch_;
  const BackupChooserOptions opts_;
  std::int64_t rounds_ = 0;
  std::int64_t choices_ = 0;
  Mean p_hit_, e_hit_, t_verify_, t_prespec_;
  std::array<Mean, 3> e_backup_, t_backup_;
};

}  // namespace ssd
