// backup_chooser.cpp: see backup_chooser.h.
#include "backup_chooser.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace ssd {
namespace {

double nonneg(double x) { return x > 0 ? x : 0.0; }  // also maps NaN to 0

}  // namespace

double expected_speedup(double p_hit, double e_hit, double e_miss, double t_p, double t_b, int batch) {
  const double p = std::isnan(p_hit) ? 0.0 : std::clamp(p_hit, 0.0, 1.0);
  const double q = std::pow(p, std::max(batch, 1));
  const double tokens = p * nonneg(e_hit) + (1 - p) * nonneg(e_miss);
  const double time = q * std::max(1.0, nonneg(t_p)) + (1 - q) * (1.0 + nonneg(t_b));
  return tokens / time;
}

void BackupChooser::Mean::add(double x, double alpha) {
  n += 1;
  const double w = std::max(alpha, 1.0 / static_cast<double>(n));  // plain average while n < 1/alpha
  value += w * (x - value);
}

BackupChooser::BackupChooser(int auto_jit_max_batch, BackupChooserOptions opts)
    : auto_jit_max_batch_(auto_jit_max_batch), opts_(opts) {
  if (opts.min_samples < 0 || opts.explore_period < 0 || !(opts.ew_alpha > 0 && opts.ew_alpha <= 1)) {
    throw std::invalid_argument("BackupChooser: bad options (min_samples >= 0, explore_period >= 0, "
                                "0 < ew_alpha <= 1)");
  }
}

int BackupChooser::slot(Backup b) {
  switch (b) {
    case Backup::kJit: return 0;
    case Backup::kNgram: return 1;
    case Backup::kNone: return 2;
    case Backup::kAuto: break;
  }
  throw std::invalid_argument("BackupChooser: \"auto\" is not a concrete backup");
}

void BackupChooser::observe(const RoundObservation& o) {
  if (o.batch < 1) return;
  if (o.hits < 0 || o.hits > o.batch) {
    throw std::invalid_argument("BackupChooser::observe: hits = " + std::to_string(o.hits) +
                                " outside 0..batch = " + std::to_string(o.batch));
  }
  const int misses = o.batch - o.hits;
  const int s = misses > 0 ? slot(o.backup) : -1;
  const double a = opts_.ew_alpha;
  rounds_ += 1;
  p_hit_.add(static_cast<double>(o.hits) / o.batch, a);
  if (o.hits > 0) e_hit_.add(static_cast<double>(o.hit_tokens) / o.hits, a);
  if (o.verify_ns > 0) t_verify_.add(o.verify_ns, a);
  if (o.prespec_ns > 0) t_prespec_.add(o.prespec_ns, a);
  if (s >= 0) {
    e_backup_[s].add(static_cast<double>(o.backup_tokens) / misses, a);
    t_backup_[s].add(nonneg(o.backup_ns), a);
  }
}

Backup BackupChooser::prior(int batch) const {
  return batch <= auto_jit_max_batch_ ? Backup::kJit : Backup::kNgram;
}

double BackupChooser::predicted_speedup(Backup b, int batch, const Estimates& e) {
  const double verify = e.t_verify_ns > 0 ? e.t_verify_ns : 1.0;
  const double e_hit = e.e_hit > 0 ? e.e_hit : 1.0;
  const double t_p = e.t_prespec_ns / verify;
  const int s = slot(b);
  double e_b = 1.0, t_b = 0.0;  // guesses for an unmeasured backup (see the header)
  if (e.backup_samples[s] > 0) {
    e_b = e.e_backup[s];
    t_b = e.t_backup_ns[s] / verify;
  } else if (b == Backup::kJit) {
    e_b = e_hit;
    t_b = t_p;
  }
  return expected_speedup(e.p_hit, e_hit, e_b, t_p, t_b, batch);
}

double BackupChooser::predicted_speedup(Backup b, int batch) const {
  return predicted_speedup(b, batch, estimates());
}

Backup BackupChooser::choose(int batch) { return decide(batch, estimates()); }

Backup BackupChooser::decide(int batch, const Estimates& e) {
  const Backup pri = prior(batch);
  const Backup other = pri == Backup::kJit ? Backup::kNgram : Backup::kJit;
  choices_ += 1;
  if (e.rounds < opts_.min_samples || e.backup_samples[slot(pri)] < opts_.min_samples) return pri;
  if (e.backup_samples[slot(other)] < opts_.min_samples) return other;
  Backup best = pri;  // ties go to the prior, then the other, then none
  double best_s = predicted_speedup(pri, batch, e);
  for (Backup b : {other, Backup::kNone}) {
    const double sp = predicted_speedup(b, batch, e);
    if (sp > best_s) {
      best = b;
      best_s = sp;
    }
  }
  if (opts_.explore_period == 0 || choices_ % opts_.explore_period != 0) return best;
  if (best == Backup::kJit) return Backup::kNgram;  // refresh the one not being used
  if (best == Backup::kNgram) return Backup::kJit;
  return e.backup_samples[slot(other)] < e.backup_samples[slot(pri)] ? other : pri;
}

BackupChooser::Estimates BackupChooser::estimates() const {
  Estimates e;
  e.rounds = rounds_;
  e.p_hit = p_hit_.value;
  e.e_hit = e_hit_.value;
  e.t_verify_ns = t_verify_.value;
  e.t_prespec_ns = t_prespec_.value;
  for (int i = 0; i < 3; ++i) {
    e.backup_samples[i] = e_backup_[i].n;
    e.e_backup[i] = e_backup_[i].value;
    e.t_backup_ns[i] = t_backup_[i].value;
  }
  return e;
}

}  // namespace ssd
