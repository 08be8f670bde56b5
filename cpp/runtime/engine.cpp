// engine.cpp: see engine.h.
#include "engine.h"

#include <stdexcept>
#include <string>

namespace ssd {
namespace {

// The channels between the workers poll for spin_wait_us before parking (EngineConfig).
ChannelSpin worker_spin(const EngineConfig& config) {
  ChannelSpin spin;
  spin.poll_ns = static_cast<std::int64_t>(config.spin_wait_us) * 1000;
  return spin;
}

}  // namespace

Engine::Engine(const EngineConfig& config, ModelRunner* target, ModelRunner* draft,
               std::vector<int32_t> eos_ids, const LogitsBackendsFactory& backends,
               std::shared_ptr<TokenMasker> masker)
    : config_(config),
      has_masker_(masker != nullptr),
      stats_(config.K),
      to_draft_(16, worker_spin(config)),
      from_draft_(16, worker_spin(config)),
      events_(1 << 16) {
  config_.validate();
  if (target == nullptr) throw std::invalid_argument("Engine: the target model runner is required");
  // Draft-free sd (null draft, backup ngram): no draft worker; the target worker proposes by n-gram
  // lookup on its own thread (target_worker.h), which saves two thread hops per round.
  const bool draft_free = mode_of(config_) == Mode::kSd && backup_of(config_) == Backup::kNgram;
  const bool needs_draft = mode_of(config_) != Mode::kAr && !(draft_free && draft == nullptr);
  if (needs_draft && draft == nullptr) {
    throw std::invalid_argument("EngineConfig.mode = \"" + config_.mode + "\" with backup = \"" +
                                config_.backup + "\" needs a draft model; allowed without one: mode " +
                                "\"ar\", or mode \"sd\" with backup \"ngram\" (draft-free prompt lookup)");
  }
  vocab_ = target->vocab_size();
  if (needs_draft && draft->vocab_size() != vocab_) {
    throw std::invalid_argument("draft vocab_size " + std::to_string(draft->vocab_size()) +
                                " differs from the target's " + std::to_string(vocab_) +
                                "; both models must produce logits over the same vocabulary");
  }
  if (needs_draft) {
    draft_ = std::make_unique<DraftWorker>(config_, draft, &stats_, &to_draft_, &from_draft_, backends(),
                                           masker);
    const std::string error = draft_->start();  // its thread has ended on an error
    if (!error.empty()) throw std::runtime_error(error);
  }
  target_ = std::make_unique<TargetWorker>(config_, target, &stats_, &scheduler_,
                                           needs_draft ? &to_draft_ : nullptr,
                                           needs_draft ? &from_draft_ : nullptr, &events_,
                                           std::move(eos_ids), backends(), std::move(masker));
  const std::string error = target_->start();
  if (!error.empty()) {  // stop the draft worker before the members it uses go away
    to_draft_.close();
    from_draft_.close();
    if (draft_) draft_->join();
    throw std::runtime_error(error);
  }
}

Engine::~Engine() { close(); }

void Engine::check_request(const std::vector<int32_t>& prompt, const SamplingParams& p) const {
  if (prompt.empty()) throw std::invalid_argument("prompt is empty: give at least one token");
  for (size_t i = 0; i < prompt.size(); ++i) {
    if (prompt[i] < 0 || prompt[i] >= vocab_) {
      throw std::invalid_argument("prompt token " + std::to_string(i) + " = " + std::to_string(prompt[i]) +
                                  " is outside the vocabulary: allowed 0.." + std::to_string(vocab_ - 1));
    }
  }
  p.validate();
  if (p.constraint > 0 && !has_masker_) {
    throw std::invalid_argument("SamplingParams.constraint = " + std::to_string(p.constraint) +
                                " needs an engine built with a TokenMasker; this one has none: allowed 0 "
                                "(unconstrained)");
  }
  int64_t need = static_cast<int64_t>(prompt.size()) + p.max_tokens;
  if (need > config_.max_context) {
    throw std::invalid_argument("prompt of " + std::to_string(prompt.size()) + " tokens + max_tokens " +
                                std::to_string(p.max_tokens) + " = " + std::to_string(need) +
                                " exceeds the context: allowed at most max_context = " +
                                std::to_string(config_.max_context));
  }
}

int64_t Engine::submit(std::vector<int32_t> prompt, const SamplingParams& params, bool stream) {
  check_request(prompt, params);
  return scheduler_.submit(std::move(prompt), params, stream);
}

void Engine::cancel(int64_t id) { scheduler_.cancel(id); }

PopStatus Engine::poll(OutputEvent* event, std::chrono::milliseconds timeout) {
  std::lock_guard<std::mutex> lock(poll_mutex_);
  const PopStatus status = events_.pop_for(*event, timeout);
  if (status == PopStatus::kItem) stats_.record_finish(event->finish);  // every request ends here
  return status;
}

void Engine::close() {
  std::lock_guard<std::mutex> lock(close_mutex_);
  if (closed_) return;
  closed_ = true;
  std::vector<Request> queued = scheduler_.stop();  // no more submits; the queue is handed back
  if (target_) target_->join();   // finishes its round; fails what is still running
  for (const Request& r : queued) {  // events_ has one producer: only now that the target is done
    OutputEvent ev;
    ev.seq_id = r.id;
    ev.finish = FinishReason::kError;
    ev.error = "the engine was closed before the request started";
    ev.error_kind = ErrorKind::kClosed;
    events_.push(std::move(ev));
  }
  to_draft_.close();
  from_draft_.close();
  if (draft_) draft_->join();
  events_.close();
}

}  // namespace ssd
