// test_backup_chooser.cpp: the expected-throughput model (SSD_SPEC section 6) and BackupChooser's
// prior, warm-up exploration, and model-based choice on synthetic measurements.
#include <array>
#include <cmath>
#include <random>
#include <vector>

#include "backup_chooser.h"
#include "check.h"

using ssd::Backup;
using ssd::BackupChooser;
using ssd::RoundObservation;

SSD_TEST(expected_speedup_matches_the_papers_formula) {
  // B = 1: [p E_hit + (1-p) E_miss] / [p max(1, T_p) + (1-p)(1 + T_b)]
  SSD_CHECK_NEAR(ssd::expected_speedup(0.9, 4, 1, 0.8, 0.0), 3.7, 1e-12);
  SSD_CHECK_NEAR(ssd::expected_speedup(0.9, 4, 1, 0.8, 0.5), 3.7 / 1.05, 1e-12);
  SSD_CHECK_NEAR(ssd::expected_speedup(0.9, 4, 1, 2.0, 0.5), 3.7 / (0.9 * 2 + 0.1 * 1.5), 1e-12);
  // Batch: the round stalls when any sequence misses (q = p^B).
  const double q = std::pow(0.9, 4);
  SSD_CHECK_NEAR(ssd::expected_speedup(0.9, 4, 1, 0.8, 0.5, 4), 3.7 / (q + (1 - q) * 1.5), 1e-12);
  // AR-like: nothing hits, nothing speculated, no cost -> 1 token per verify.
  SSD_CHECK_NEAR(ssd::expected_speedup(0.0, 5, 1, 0.3, 0.0), 1.0, 1e-12);
  // Out-of-domain inputs are clamped.
  SSD_CHECK_NEAR(ssd::expected_speedup(1.5, 4, 1, 0.5, 0.0), 4.0, 1e-12);
  SSD_CHECK_NEAR(ssd::expected_speedup(-1, 4, 1, -3, -3), 1.0, 1e-12);
}

SSD_TEST(prior_is_the_papers_rule) {
  BackupChooser c(8);
  SSD_CHECK(c.prior(1) == Backup::kJit);
  SSD_CHECK(c.prior(8) == Backup::kJit);
  SSD_CHECK(c.prior(9) == Backup::kNgram);
  SSD_CHECK(c.choose(4) == Backup::kJit);  // no measurements: the prior
  SSD_CHECK(c.choose(32) == Backup::kNgram);
  BackupChooser never_jit(0);
  SSD_CHECK(never_jit.choose(1) == Backup::kNgram);
}

// A synthetic world, times in units of one verification (1 ms): pre-speculation `prespec`, hit rate p
// per sequence, tokens per hit e_hit; jit costs t_jit and yields e_jit tokens per missed sequence;
// ngram t_ngram / e_ngram. The defaults make jit the best backup at batch 1 by the model:
//   jit   (0.75*3.5 + 0.25*3.5) / (0.75 + 0.25*1.3)   = 3.26
//   ngram (0.75*3.5 + 0.25*1.5) / (0.75 + 0.25*1.02)  = 2.99
//   none  (0.75*3.5 + 0.25*1.0) / 1                   = 2.88
struct World {
  double p = 0.75, e_hit = 3.5, prespec = 0.8;
  double t_jit = 0.3, e_jit = 3.5;
  double t_ngram = 0.02, e_ngram = 1.5;
};

static RoundObservation observation(const World& w, int batch, int hits, Backup used) {
  RoundObservation o;
  o.batch = batch;
  o.hits = hits;
  o.hit_tokens = static_cast<int>(std::lround(w.e_hit * hits));
  o.verify_ns = 1e6;
  o.prespec_ns = w.prespec * 1e6;
  o.backup = used;
  const int misses = batch - hits;
  const double e = used == Backup::kJit ? w.e_jit : used == Backup::kNgram ? w.e_ngram : 1.0;
  const double t = used == Backup::kJit ? w.t_jit : used == Backup::kNgram ? w.t_ngram : 0.0;
  o.backup_tokens = static_cast<int>(std::lround(e * misses));
  o.backup_ns = misses > 0 ? t * 1e6 : 0.0;
  return o;
}

// Runs rounds until `choices` choices were made (the engine asks only on rounds with a miss) and
// returns the counts (jit, ngram, none) of the last `tail` choices.
static std::array<int, 3> run(BackupChooser& c, const World& w, int batch, int choices, int tail,
                              unsigned seed = 1) {
  std::mt19937_64 rng(seed);
  std::binomial_distribution<int> hits_dist(batch, w.p);
  std::array<int, 3> counts{};
  for (int made = 0; made < choices;) {
    const int hits = hits_dist(rng);
    Backup b = Backup::kNone;
    if (hits < batch) {
      b = c.choose(batch);
      SSD_CHECK(b != Backup::kAuto);
      if (made >= choices - tail) counts[b == Backup::kJit ? 0 : b == Backup::kNgram ? 1 : 2] += 1;
      ++made;
    }
    c.observe(observation(w, batch, hits, b));
  }
  return counts;
}

SSD_TEST(warm_up_measures_both_backups) {
  ssd::BackupChooserOptions opts;
  opts.min_samples = 4;
  opts.explore_period = 0;
  BackupChooser c(8, opts);
  World w;
  std::vector<Backup> seq;
  for (int i = 0; i < 8; ++i) {  // every round has one miss out of 2
    seq.push_back(c.choose(2));
    c.observe(observation(w, 2, 1, seq.back()));
  }
  const std::vector<Backup> expect = {Backup::kJit,   Backup::kJit,   Backup::kJit,   Backup::kJit,
                                      Backup::kNgram, Backup::kNgram, Backup::kNgram, Backup::kNgram};
  SSD_CHECK(seq == expect);  // the prior (jit at batch 2 <= 8) first, then the other one
  auto e = c.estimates();
  SSD_CHECK_EQ(e.backup_samples[0], 4);
  SSD_CHECK_EQ(e.backup_samples[1], 4);
  SSD_CHECK_EQ(e.backup_samples[2], 0);
  SSD_CHECK_NEAR(e.p_hit, 0.5, 1e-12);
  SSD_CHECK_NEAR(e.e_hit, 4.0, 1e-12);  // lround(3.5 * 1)
  SSD_CHECK_NEAR(e.t_verify_ns, 1e6, 1e-6);
  SSD_CHECK_NEAR(e.e_backup[0], 4.0, 1e-12);
  SSD_CHECK_NEAR(e.t_backup_ns[1], 0.02e6, 1e-6);
}

SSD_TEST(cheap_good_jit_wins_at_small_batch) {
  ssd::BackupChooserOptions opts;
  opts.explore_period = 0;
  BackupChooser c(0, opts);  // the prior says ngram; the measurements must overrule it
  World w;
  auto counts = run(c, w, 1, 200, 100);
  SSD_CHECK_EQ(counts[0], 100);
  SSD_CHECK(c.predicted_speedup(Backup::kJit, 1) > c.predicted_speedup(Backup::kNgram, 1));
}

SSD_TEST(expensive_jit_loses_at_large_batch) {
  ssd::BackupChooserOptions opts;
  opts.explore_period = 0;
  BackupChooser c(1000, opts);  // the prior says jit; at batch 32 nearly every round has a miss
  World w;  // batch 32, p = 0.9: q = 0.9^32 = 0.034, so nearly every round pays the backup
  w.p = 0.9;
  w.t_jit = 4.0;       // jit:   3.50 / (0.034 + 0.966 * 5)     = 0.72
  w.t_ngram = 0.005;   // ngram: 3.33 / (0.034 + 0.966 * 1.005) = 3.31
  w.e_ngram = 1.8;     // none:  3.25 / 1                       = 3.25
  auto counts = run(c, w, 32, 200, 100);
  SSD_CHECK_EQ(counts[1], 100);
  SSD_CHECK(c.predicted_speedup(Backup::kNgram, 32) > c.predicted_speedup(Backup::kNone, 32));
  SSD_CHECK(c.predicted_speedup(Backup::kNone, 32) > c.predicted_speedup(Backup::kJit, 32));
}

SSD_TEST(none_wins_when_both_backups_are_useless) {
  ssd::BackupChooserOptions opts;
  opts.explore_period = 0;
  BackupChooser c(8, opts);
  World w;
  w.t_jit = 5.0;
  w.e_jit = 1.0;
  w.t_ngram = 0.5;
  w.e_ngram = 1.0;
  auto counts = run(c, w, 4, 200, 100);
  SSD_CHECK_EQ(counts[2], 100);
}

SSD_TEST(periodic_exploration_refreshes_the_other_backup) {
  ssd::BackupChooserOptions opts;
  opts.explore_period = 10;
  BackupChooser c(8, opts);
  World w;
  auto counts = run(c, w, 1, 300, 100);
  SSD_CHECK_EQ(counts[0], 90);
  SSD_CHECK_EQ(counts[1], 10);
}

SSD_TEST(bad_inputs) {
  BackupChooser c(8);
  SSD_CHECK_THROWS(c.predicted_speedup(Backup::kAuto, 1));
  RoundObservation o;
  o.batch = 2;
  o.hits = 3;
  SSD_CHECK_THROWS(c.observe(o));
  o.batch = 0;
  c.observe(o);  // ignored
  SSD_CHECK_EQ(c.estimates().rounds, 0);
  ssd::BackupChooserOptions bad;
  bad.ew_alpha = 0;
  SSD_CHECK_THROWS(BackupChooser(8, bad));
}

int main() { return ssd_test::run_all(); }
