// public_engine.cpp: ssdcore::Engine (include/ssdcore/engine.h), the pimpl facade over ssd::Engine,
// and detail::EngineBuilder (public_api.h), which builds it with a pinned router.
//
// Routing: the runtime publishes the events of every request on one channel that only one thread may
// poll at a time. A router thread (pump) polls it and files each event, under `m_`, into the
// request's state: tokens accumulate into its Result; a kNext/kNextFinal request (generate() uses
// kNext) gets the event in its mailbox, read by next(); a kPoll request that nobody waits for gets it
// in the poll queue. Callers block on `cv_`, never on the runtime, so any number of threads may
// generate/next/wait/poll at once. submit() registers the request under `m_` before the router can
// see its first event (the router needs `m_` to file it). The router never calls back into the
// application (or Python): it only files events.
// Shutdown: close() closes the runtime (which fails its running requests), the router drains the
// channel, then fails whatever is still unfinished (requests still queued at close get no runtime
// event) and exits; waiters wake up with kError.
#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>

#include "engine.h"
#include "public_api.h"
#include "thread_team.h"

namespace ssdcore {

class Engine::Impl {
 public:
  // The router thread runs on `router_cores` (empty: anywhere).
  Impl(const EngineConfig& config, ModelRunner* target, ModelRunner* draft, std::vector<int32_t> eos,
       std::vector<int> router_cores, std::shared_ptr<TokenMasker> masker);
  ~Impl() { close(); }

  RequestId submit(std::vector<int32_t> prompt, const SamplingParams& params, Delivery delivery);
  Result generate(std::vector<int32_t> prompt, const SamplingParams& params, const TokenCallback& cb);
  bool next(RequestId id, Event* event, std::chrono::milliseconds timeout);
  Result wait(RequestId id);
  bool poll(Event* event, std::chrono::milliseconds timeout);
  void cancel(RequestId id) { engine_->cancel(id); }
  void discard(RequestId id);
  std::size_t pending() {
    std::lock_guard<std::mutex> lock(m_);
    return requests_.size();
  }
  void close();

  EngineConfig config_;
  int64_t vocab_ = 0;
  std::unique_ptr<ssd::Engine> engine_;

 private:
  struct Request {
    Delivery delivery = Delivery::kPoll;
    bool waited = false;      // wait() is collecting it: no events for poll()
    bool abandoned = false;   // discarded: dropped when finished
    bool finished = false;
    std::deque<Event> mailbox;
    Result result;
  };

  void pump();
  void route(ssd::OutputEvent& ev);        // under m_
  void fail_unfinished(const std::string& error);  // under m_
  Request& find(RequestId id, const char* caller);  // under m_; throws when unknown

  std::mutex m_;
  std::condition_variable cv_;
  std::unordered_map<RequestId, Request> requests_;
  std::deque<Event> poll_queue_;
  bool closed_ = false;     // no more submits
  bool pump_done_ = false;  // every request is finished, no more events
  std::thread pump_;
  std::mutex close_mutex_;
};

Engine::Impl::Impl(const EngineConfig& config, ModelRunner* target, ModelRunner* draft, std::vector<int32_t> eos,
                   std::vector<int> router_cores, std::shared_ptr<TokenMasker> masker) {
  if (target == nullptr) throw std::invalid_argument("Engine: the target model runner is required");
  engine_ = std::make_unique<ssd::Engine>(config, target, draft, std::move(eos), ssd::built_in_logits_backends,
                                          std::move(masker));
  config_ = config;
  vocab_ = target->vocab_size();
  pump_ = std::thread([this, cores = std::move(router_cores)] {
    try {
      ssd::pin_current_thread(cores);
    } catch (const std::runtime_error&) {
      // unusable cores: the draft worker, pinned to the same cores, reports them; route unpinned
    }
    pump();
  });
}

RequestId Engine::Impl::submit(std::vector<int32_t> prompt, const SamplingParams& params, Delivery delivery) {
  std::lock_guard<std::mutex> lock(m_);
  if (closed_) throw std::logic_error("ssdcore::Engine is closed; create a new Engine");
  const int32_t prompt_tokens = static_cast<int32_t>(prompt.size());
  const bool every_round = delivery != Delivery::kNextFinal;
  RequestId id = engine_->submit(std::move(prompt), params, every_round);
  Request& r = requests_[id];
  r.delivery = delivery;
  r.result.id = id;
  r.result.metrics.prompt_tokens = prompt_tokens;
  return id;
}

void Engine::Impl::pump() {
  for (;;) {
    ssd::OutputEvent ev;
    const ssd::PopStatus status = engine_->poll(&ev, std::chrono::milliseconds(1000));
    if (status == ssd::PopStatus::kClosed) break;
    if (status == ssd::PopStatus::kTimeout) continue;
    std::lock_guard<std::mutex> lock(m_);
    route(ev);
    cv_.notify_all();
  }
  std::lock_guard<std::mutex> lock(m_);
  fail_unfinished("the engine was closed before the request finished");
  pump_done_ = true;
  cv_.notify_all();
}

void Engine::Impl::route(ssd::OutputEvent& ev) {
  auto it = requests_.find(ev.seq_id);
  if (it == requests_.end() || it->second.finished) return;
  Request& r = it->second;
  Event out;
  out.id = ev.seq_id;
  out.tokens = std::move(ev.tokens);
  out.finish_reason = ev.finish;
  r.result.tokens.insert(r.result.tokens.end(), out.tokens.begin(), out.tokens.end());
  if (out.finished()) {
    r.finished = true;
    r.result.finish_reason = out.finish_reason;
    r.result.error = ev.error;
    r.result.error_kind = ev.error_kind;
    if (out.finish_reason == FinishReason::kError && r.result.error.empty()) r.result.error = "unknown error";
    const int32_t prompt_tokens = r.result.metrics.prompt_tokens;
    r.result.metrics = ev.metrics;
    if (r.result.metrics.prompt_tokens == 0) r.result.metrics.prompt_tokens = prompt_tokens;
    out.error = r.result.error;
    out.error_kind = ev.error_kind;
    out.metrics = r.result.metrics;
  }
  if (r.abandoned) {
    if (r.finished) requests_.erase(it);
  } else if (r.delivery != Delivery::kPoll) {
    r.mailbox.push_back(std::move(out));
  } else if (!r.waited) {
    poll_queue_.push_back(std::move(out));
  }
}

void Engine::Impl::fail_unfinished(const std::string& error) {
  std::vector<RequestId> ids;
  for (auto& kv : requests_) {
    if (!kv.second.finished) ids.push_back(kv.first);
  }
  for (RequestId id : ids) {
    ssd::OutputEvent ev;
    ev.seq_id = id;
    ev.finish = FinishReason::kError;
    ev.error = error;
    ev.error_kind = ErrorKind::kClosed;
    route(ev);
  }
}

Engine::Impl::Request& Engine::Impl::find(RequestId id, const char* caller) {
  auto it = requests_.find(id);
  if (it == requests_.end() || it->second.abandoned) {
    throw std::invalid_argument(std::string("Engine::") + caller + ": request id " + std::to_string(id) +
                                " is unknown or already collected (each submitted request is "
                                "collected once, by wait(), by poll() or next() returning its final "
                                "event, or by discard())");
  }
  return it->second;
}

bool Engine::Impl::next(RequestId id, Event* event, std::chrono::milliseconds timeout) {
  if (event == nullptr) throw std::invalid_argument("Engine::next: event must not be null");
  std::unique_lock<std::mutex> lock(m_);
  if (find(id, "next").delivery == Delivery::kPoll) {
    throw std::invalid_argument("Engine::next: request id " + std::to_string(id) +
                                " was submitted with Delivery::kPoll: collect it with wait() or poll()");
  }
  // discard() from another thread may erase the request while this one waits: look it up each time
  const auto ready = [&] {
    auto it = requests_.find(id);
    return it == requests_.end() || it->second.abandoned || !it->second.mailbox.empty();
  };
  if (!cv_.wait_for(lock, timeout, ready)) return false;
  Request& r = find(id, "next");
  *event = std::move(r.mailbox.front());
  r.mailbox.pop_front();
  if (event->finished()) requests_.erase(id);
  return true;
}

Result Engine::Impl::generate(std::vector<int32_t> prompt, const SamplingParams& params,
                              const TokenCallback& cb) {
  const RequestId id = submit(std::move(prompt), params, Delivery::kNext);
  bool listening = static_cast<bool>(cb);
  Result result;
  result.id = id;
  for (;;) {
    Event ev;
    if (!next(id, &ev, std::chrono::milliseconds(1000))) continue;
    if (listening && !ev.tokens.empty()) {
      try {
        listening = cb(ev.tokens);
      } catch (...) {
        discard(id);
        throw;
      }
      if (!listening) engine_->cancel(id);
    }
    result.tokens.insert(result.tokens.end(), ev.tokens.begin(), ev.tokens.end());
    if (!ev.finished()) continue;
    result.finish_reason = ev.finish_reason;
    result.error = ev.error;
    result.error_kind = ev.error_kind;
    result.metrics = ev.metrics;
    return result;
  }
}

void Engine::Impl::discard(RequestId id) {
  engine_->cancel(id);
  std::lock_guard<std::mutex> lock(m_);
  auto it = requests_.find(id);
  if (it == requests_.end()) return;
  if (it->second.finished) {
    requests_.erase(it);
  } else {
    it->second.abandoned = true;
    it->second.mailbox.clear();
  }
  cv_.notify_all();
}

Result Engine::Impl::wait(RequestId id) {
  std::unique_lock<std::mutex> lock(m_);
  Request& r = find(id, "wait");
  if (r.delivery != Delivery::kPoll) {
    throw std::invalid_argument("Engine::wait: request id " + std::to_string(id) +
                                " is delivered through next(); collect it there");
  }
  if (r.waited) {
    throw std::invalid_argument("Engine::wait: request id " + std::to_string(id) +
                                " is already being waited for by another thread");
  }
  r.waited = true;
  poll_queue_.erase(std::remove_if(poll_queue_.begin(), poll_queue_.end(),
                                   [id](const Event& e) { return e.id == id; }),
                    poll_queue_.end());
  cv_.wait(lock, [&] { return r.finished; });
  Result result = std::move(r.result);
  requests_.erase(id);
  return result;
}

bool Engine::Impl::poll(Event* event, std::chrono::milliseconds timeout) {
  if (event == nullptr) throw std::invalid_argument("Engine::poll: event must not be null");
  std::unique_lock<std::mutex> lock(m_);
  cv_.wait_for(lock, timeout, [&] { return !poll_queue_.empty() || pump_done_; });
  if (poll_queue_.empty()) return false;
  *event = std::move(poll_queue_.front());
  poll_queue_.pop_front();
  if (event->finished()) requests_.erase(event->id);
  return true;
}

void Engine::Impl::close() {
  std::lock_guard<std::mutex> close_lock(close_mutex_);
  {
    std::lock_guard<std::mutex> lock(m_);
    if (closed_) return;
    closed_ = true;
  }
  engine_->close();
  if (pump_.joinable()) pump_.join();
}

// ---- the facade ----------------------------------------------------------------------------------

Engine::Engine(const EngineConfig& config, ModelRunner* target, ModelRunner* draft,
               std::vector<int32_t> eos_ids, std::shared_ptr<TokenMasker> token_masker)
    : impl_(std::make_unique<Impl>(config, target, draft, std::move(eos_ids), std::vector<int>{},
                                   std::move(token_masker))) {}
Engine::Engine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Engine::~Engine() = default;

Result Engine::generate(std::vector<int32_t> prompt, const SamplingParams& params,
                        const TokenCallback& on_tokens) {
  return impl_->generate(std::move(prompt), params, on_tokens);
}
RequestId Engine::submit(std::vector<int32_t> prompt, const SamplingParams& params, Delivery delivery) {
  return impl_->submit(std::move(prompt), params, delivery);
}
Result Engine::wait(RequestId id) { return impl_->wait(id); }
bool Engine::poll(Event* event, std::chrono::milliseconds timeout) { return impl_->poll(event, timeout); }
bool Engine::next(RequestId id, Event* event, std::chrono::milliseconds timeout) {
  return impl_->next(id, event, timeout);
}
void Engine::cancel(RequestId id) { impl_->cancel(id); }
void Engine::discard(RequestId id) { impl_->discard(id); }
std::size_t Engine::pending() const { return impl_->pending(); }
StatsSnapshot Engine::stats() const { return impl_->engine_->stats(); }
void Engine::reset_stats() { impl_->engine_->reset_stats(); }
const EngineConfig& Engine::config() const { return impl_->config_; }
int64_t Engine::vocab_size() const { return impl_->vocab_; }
void Engine::close() { impl_->close(); }

std::unique_ptr<Engine> detail::EngineBuilder::make(const EngineConfig& config, ModelRunner* target,
                                                    ModelRunner* draft, std::vector<int32_t> eos_ids,
                                                    std::vector<int> router_cores,
                                                    std::shared_ptr<TokenMasker> token_masker) {
  auto impl = std::make_unique<Engine::Impl>(config, target, draft, std::move(eos_ids), std::move(router_cores),
                                             std::move(token_masker));
  return std::unique_ptr<Engine>(new Engine(std::move(impl)));
}

}  // namespace ssdcore
