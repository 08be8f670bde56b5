// public_api.cpp: conversions between the public API types and the runtime's, the model runner
// adapter and the small free functions of the public API. See public_api.h.
#include "public_api.h"

#include <memory>
#include <stdexcept>
#include <string>

namespace ssdcore {

namespace {
// The public enumerations index the same vectors as the internal ones, in the same order.
static_assert(kNumPhases == ssd::kNumPhases, "public Phase out of sync");
static_assert(kNumSpecSources == ssd::kNumSpecSources, "public SpecSource out of sync");
static_assert(static_cast<int>(Phase::kDraftPrespeculate) == static_cast<int>(ssd::Phase::kDraftPrespeculate),
              "public Phase out of sync");
static_assert(static_cast<int>(SpecSource::kSdDraft) == static_cast<int>(ssd::SpecSource::kSdDraft),
              "public SpecSource out of sync");
static_assert(static_cast<int>(Backup::kNone) == static_cast<int>(ssd::Backup::kNone),
              "public Backup out of sync");
static_assert(static_cast<int>(FinishReason::kError) == static_cast<int>(ssd::FinishReason::kError),
              "public FinishReason out of sync");
}  // namespace

const char* version() noexcept { return SSDCORE_VERSION_STRING; }

const char* to_string(FinishReason reason) noexcept {
  return ssd::to_string(static_cast<ssd::FinishReason>(reason));
}
const char* to_string(Backup b) noexcept {
  const int i = static_cast<int>(b);
  return i >= 0 && i < kNumBackups ? ssd::to_string(static_cast<ssd::Backup>(i)) : "?";
}
const char* to_string(SpecSource s) noexcept {
  const int i = static_cast<int>(s);
  return i >= 0 && i < kNumSpecSources ? ssd::to_string(static_cast<ssd::SpecSource>(i)) : "?";
}
const char* to_string(Phase p) noexcept {
  const int i = static_cast<int>(p);
  return i >= 0 && i < kNumPhases ? ssd::to_string(static_cast<ssd::Phase>(i)) : "?";
}

namespace detail {

FinishReason from_internal(ssd::FinishReason r) { return static_cast<FinishReason>(static_cast<int>(r)); }

RequestMetrics from_internal(const ssd::RequestMetrics& m) {
  RequestMetrics o;
  o.prompt_tokens = m.prompt_tokens;
  o.generated_tokens = m.generated_tokens;
  o.rounds = m.rounds;
  o.accepted_drafts = m.accepted_drafts;
  o.cache_hits = m.cache_hits;
  o.cache_lookups = m.cache_lookups;
  o.time_to_first_token = m.time_to_first_token;
  o.decode_seconds = m.decode_seconds;
  return o;
}

Stats from_internal(const ssd::StatsSnapshot& s) {
  Stats o;
  o.K = s.K;
  o.rounds = s.rounds;
  o.sequence_rounds = s.sequence_rounds;
  o.tokens_committed = s.tokens_committed;
  o.accept_hist = s.accept_hist;
  o.position_reached = s.position_reached;
  o.position_accepted = s.position_accepted;
  o.cache_hits = s.cache_hits;
  o.cache_misses = s.cache_misses;
  o.backup_counts = s.backup_counts;
  o.source_rounds = s.source_rounds;
  o.source_accepted = s.source_accepted;
  o.phase_ns = s.phase_ns;
  o.phase_count = s.phase_count;
  o.draft_overlap_ns = s.draft_overlap_ns;
  o.draft_windows = s.draft_windows;
  o.position_acceptance = s.position_acceptance;
  o.source_mean_accepted = s.source_mean_accepted;
  o.mean_accepted = s.mean_accepted;
  o.mean_accept_length = s.mean_accept_length;
  o.tokens_per_round = s.tokens_per_round;
  o.hit_rate = s.hit_rate;
  o.draft_busy_ns = s.draft_busy_ns;
  o.draft_hidden_fraction = s.draft_hidden_fraction;
  return o;
}

ForwardBatch make_batch(const ssd::ForwardRequest& req) {
  ForwardBatch b;
  b.rows = req.rows();
  b.tokens = req.tokens.data();
  b.positions = req.positions.data();
  b.lanes = req.lanes.data();
  b.slots = req.slots.data();
  b.attend_len = req.attend_len.empty() ? nullptr : req.attend_len.data();
  b.extra_slots = req.extra_slots.empty() ? nullptr : req.extra_slots.data();
  b.extra_width = b.extra_slots == nullptr ? 0 : req.extra_width;
  b.out_index = req.out_index.data();
  b.out_rows = req.out_rows;
  return b;
}

ssd::Logits RunnerAdapter::forward(const ssd::ForwardRequest& request) {
  Logits out = runner_->forward(make_batch(request));
  const int64_t vocab = runner_->vocab_size();
  if (request.out_rows > 0 && (out.data == nullptr || out.rows < request.out_rows || out.vocab != vocab)) {
    throw std::runtime_error(std::string(side_) + " ModelRunner::forward returned logits of shape [" +
                             std::to_string(out.rows) + ", " + std::to_string(out.vocab) + "]" +
                             (out.data == nullptr ? " with no data" : "") + "; expected at least [" +
                             std::to_string(request.out_rows) + ", " + std::to_string(vocab) + "]");
  }
  ssd::Logits l;
  l.data = out.data;
  l.rows = out.rows;
  l.vocab = out.vocab;
  l.owner = std::const_pointer_cast<void>(std::move(out.owner));
  return l;
}

}  // namespace detail
}  // namespace ssdcore
