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
}  // namespace

const char* version() noexcept { return SSDCORE_VERSION_STRING; }

const char* to_string(FinishReason reason) noexcept {
  switch (reason) {
    case FinishReason::kNone: return "none";
    case FinishReason::kLength: return "length";
    case FinishReason::kStop: return "stop";
    case FinishReason::kCancelled: return "cancelled";
    case FinishReason::kError: return "error";
  }
  return "?";
}
const char* to_string(ErrorKind kind) noexcept {
  switch (kind) {
    case ErrorKind::kNone: return "";
    case ErrorKind::kModelRunner: return "model_runner";
    case ErrorKind::kNonFinite: return "non_finite";
    case ErrorKind::kClosed: return "closed";
  }
  return "?";
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
