// test_stats.cpp: Stats counters, derived ratios, snapshot consistency under concurrent writers,
// reset, and ScopedTimer.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <numeric>
#include <thread>

#include "check.h"
#include "stats.h"
#include "stress_util.h"

using ssd::Phase;
using ssd::SpecSource;
using ssd::Stats;

SSD_TEST(accept_histogram_and_positions) {
  Stats st(4);
  st.record_accept(0, 4, SpecSource::kCacheHit);  // rejected at position 0
  st.record_accept(2, 4, SpecSource::kCacheHit);  // positions 0,1 accepted, 2 rejected
  st.record_accept(4, 4, SpecSource::kJit);       // all accepted (bonus token)
  st.record_accept(1, 1, SpecSource::kNgram);     // short proposal fully accepted
  st.record_accept(0, 0, SpecSource::kNone);      // nothing proposed
  auto s = st.snapshot();
  SSD_CHECK_EQ(s.sequence_rounds, 5u);
  SSD_CHECK(s.accept_hist == std::vector<std::uint64_t>({2, 1, 1, 0, 1}));
  SSD_CHECK(s.position_reached == std::vector<std::uint64_t>({4, 2, 2, 1}));
  SSD_CHECK(s.position_accepted == std::vector<std::uint64_t>({3, 2, 1, 1}));
  SSD_CHECK_NEAR(s.position_acceptance[0], 0.75, 1e-12);
  SSD_CHECK_NEAR(s.position_acceptance[2], 0.5, 1e-12);
  SSD_CHECK_NEAR(s.mean_accepted, 7.0 / 5, 1e-12);
  SSD_CHECK_NEAR(s.mean_accept_length, 12.0 / 5, 1e-12);
  SSD_CHECK_EQ(s.source_rounds[int(SpecSource::kCacheHit)], 2u);
  SSD_CHECK_EQ(s.source_accepted[int(SpecSource::kCacheHit)], 2u);
  SSD_CHECK_NEAR(s.source_mean_accepted[int(SpecSource::kJit)], 4.0, 1e-12);
  SSD_CHECK_THROWS(st.record_accept(5, 5, SpecSource::kJit));  // proposed > K
  SSD_CHECK_THROWS(st.record_accept(3, 2, SpecSource::kJit));  // accepted > proposed
}

SSD_TEST(lookups_backups_rounds_tokens) {
  Stats st(2);
  st.record_lookup(0, true);
  st.record_lookup(0, false);
  st.record_lookup(2, true);
  st.record_backup(ssd::Backup::kJit, 3);
  st.record_backup(ssd::Backup::kNgram);
  st.record_round(4);
  st.record_tokens(10);
  auto s = st.snapshot();
  SSD_CHECK(s.cache_hits == std::vector<std::uint64_t>({1, 0, 1}));
  SSD_CHECK(s.cache_misses == std::vector<std::uint64_t>({1, 0, 0}));
  SSD_CHECK_NEAR(s.hit_rate, 2.0 / 3, 1e-12);
  SSD_CHECK_EQ(s.backup_counts[int(ssd::Backup::kJit)], 3u);
  SSD_CHECK_EQ(s.backup_counts[int(ssd::Backup::kNgram)], 1u);
  SSD_CHECK_NEAR(s.tokens_per_round, 2.5, 1e-12);
  SSD_CHECK_THROWS(st.record_lookup(3, true));
  SSD_CHECK_THROWS(st.record_lookup(-1, true));
}

SSD_TEST(phases_and_hidden_fraction) {
  Stats st(1);
  st.add_phase_ns(Phase::kDraftGlue, 100);
  st.add_phase_ns(Phase::kDraftTree, 300);
  st.add_phase_ns(Phase::kDraftJit, 100);
  st.add_phase_ns(Phase::kDraftPrespeculate, 400);  // the window holding glue + tree: busy = it + jit
  st.add_phase_ns(Phase::kTargetVerify, 1000);
  st.add_phase_ns(Phase::kTargetVerify, -5);  // clamped to 0, still counted as an interval
  st.add_draft_window(ssd::overlap_ns(0, 400, 100, 1100));  // 300
  auto s = st.snapshot();
  SSD_CHECK_EQ(s.phase_ns[int(Phase::kTargetVerify)], 1000);
  SSD_CHECK_EQ(s.phase_count[int(Phase::kTargetVerify)], 2u);
  SSD_CHECK_EQ(s.draft_busy_ns, 500);
  SSD_CHECK_EQ(s.draft_overlap_ns, 300);
  SSD_CHECK_EQ(s.draft_windows, 1u);
  SSD_CHECK_NEAR(s.draft_hidden_fraction, 0.6, 1e-12);
  // work inside a window but outside the glue/tree timers (the fork) is busy time too, so a fully
  // overlapped window never pushes the fraction above 1
  st.add_phase_ns(Phase::kDraftPrespeculate, 100);
  st.add_draft_window(100);
  s = st.snapshot();
  SSD_CHECK_EQ(s.draft_windows, 2u);
  SSD_CHECK_EQ(s.draft_busy_ns, 600);
  SSD_CHECK_NEAR(s.draft_hidden_fraction, 400.0 / 600.0, 1e-12);
  SSD_CHECK_EQ(ssd::overlap_ns(0, 10, 20, 30), 0);
  SSD_CHECK_EQ(std::string(ssd::to_string(Phase::kWaitForDraft)), std::string("wait_for_draft"));
}

SSD_TEST(empty_snapshot_has_zero_ratios) {
  Stats st(3);
  auto s = st.snapshot();
  SSD_CHECK_EQ(s.K, 3);
  SSD_CHECK_EQ(s.accept_hist.size(), 4u);
  SSD_CHECK_EQ(s.position_reached.size(), 3u);
  SSD_CHECK_EQ(s.hit_rate, 0.0);
  SSD_CHECK_EQ(s.mean_accept_length, 0.0);
  SSD_CHECK_EQ(s.draft_hidden_fraction, 0.0);
}

SSD_TEST(reset_clears_everything) {
  Stats st(2);
  st.record_accept(1, 2, SpecSource::kJit);
  st.record_lookup(1, true);
  st.add_phase_ns(Phase::kWaitForDraft, 5);
  st.reset();
  auto s = st.snapshot();
  SSD_CHECK_EQ(s.sequence_rounds, 0u);
  SSD_CHECK_EQ(s.accept_hist[1], 0u);
  SSD_CHECK_EQ(s.cache_hits[1], 0u);
  SSD_CHECK_EQ(s.phase_ns[int(Phase::kWaitForDraft)], 0);
  SSD_CHECK_EQ(s.K, 2);
}

// Two writers (a "target" and a "draft") and a snapshotting reader: every increment is counted and
// every snapshot is internally consistent.
SSD_TEST(concurrent_writers_and_consistent_snapshots) {
  Stats st(4);
  const int n = static_cast<int>(ssd_test::scaled(200000, 4));
  std::atomic<bool> stop{false};
  std::atomic<bool> consistent{true};
  std::thread reader([&] {
    while (!stop.load()) {
      auto s = st.snapshot();
      const auto hist = std::accumulate(s.accept_hist.begin(), s.accept_hist.end(), std::uint64_t{0});
      if (hist != s.sequence_rounds || s.position_reached[0] != s.sequence_rounds) consistent = false;
      std::this_thread::yield();
    }
  });
  std::thread target([&] {
    for (int i = 0; i < n; ++i) {
      st.record_accept(i % 5, 4, SpecSource::kCacheHit);
      st.record_lookup(i % 5, (i & 1) != 0);
      st.record_round();
    }
  });
  std::thread draft([&] {
    for (int i = 0; i < n; ++i) {
      st.add_phase_ns(Phase::kDraftTree, 2);
      st.record_lookup(0, true);
      st.record_backup(ssd::Backup::kNgram);
    }
  });
  target.join();
  draft.join();
  stop = true;
  reader.join();
  auto s = st.snapshot();
  SSD_CHECK(consistent.load());
  SSD_CHECK_EQ(s.sequence_rounds, static_cast<std::uint64_t>(n));
  SSD_CHECK_EQ(s.rounds, static_cast<std::uint64_t>(n));
  SSD_CHECK_EQ(s.phase_ns[int(Phase::kDraftTree)], 2LL * n);
  SSD_CHECK_EQ(s.phase_count[int(Phase::kDraftTree)], static_cast<std::uint64_t>(n));
  std::uint64_t lookups = 0;
  for (int k = 0; k <= 4; ++k) lookups += s.cache_hits[k] + s.cache_misses[k];
  SSD_CHECK_EQ(lookups, 2ull * n);
  SSD_CHECK_EQ(s.backup_counts[int(ssd::Backup::kNgram)], static_cast<std::uint64_t>(n));
}

SSD_TEST(scoped_timer_records_once) {
  Stats st(1);
  {
    ssd::ScopedTimer t(&st, Phase::kTargetVerify);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    const auto e = t.stop();
    SSD_CHECK(e >= 5000000);
    SSD_CHECK_EQ(t.stop(), e);  // idempotent
  }
  { ssd::ScopedTimer t(&st, Phase::kTargetVerify); }  // recorded by the destructor
  { ssd::ScopedTimer t(nullptr, Phase::kTargetVerify); }  // measures only
  auto s = st.snapshot();
  SSD_CHECK_EQ(s.phase_count[int(Phase::kTargetVerify)], 2u);
  SSD_CHECK(s.phase_ns[int(Phase::kTargetVerify)] >= 5000000);
}

int main() { return ssd_test::run_all(); }
