// ssdcore/engine.h: ssdcore::Engine, the speculative speculative decoding engine for native
// applications (a pimpl facade over the runtime; no internal type leaks through this header).
//
// An Engine runs a target worker thread and, in sd and ssd modes, a draft worker thread, each
// driving one of your ModelRunners (see ssdcore/model_runner.h), plus one small thread that routes
// output events to the requests they belong to. Requests are token ids in, token ids out: tokenizing
// is the application's business.
//
// Draft-free speculation (prompt lookup): mode "sd" with backup "ngram" and a null draft runner. No
// draft worker runs then; the target worker proposes, each round, up to K tokens: what followed the
// latest earlier occurrence of the sequence's last n tokens (n from ngram_n down to ngram_min_n).
// They are verified as one-hot proposals, so greedy output equals ar and sampled output keeps the
// target's distribution.
//
// Three ways to run a request (they can be mixed freely on one engine):
//   - blocking:  generate(prompt, params, on_tokens) returns the whole Result; on_tokens, if given,
//                is called on the calling thread with each group of new tokens as they are decided.
//   - async:     submit(prompt, params) returns an id at once; then either wait(id) for its Result,
//                or poll() the Events of all submitted requests as they stream.
//   - per request: submit(prompt, params, Delivery::kNext) and then next(id) for that request's
//                Events (Delivery::kNextFinal: one final Event with every token); discard(id) stops
//                following it.
// Each submitted request is collected once: by wait(id), by poll() or next(id) returning its final
// event (after which wait(id) throws std::invalid_argument), or by discard(id). An uncollected
// finished request keeps its Result in memory until collected or until the Engine is destroyed.
//
// Errors:
//   - bad arguments (empty prompt, token outside the vocabulary, invalid sampling parameters,
//     prompt + max_tokens > max_context, invalid config, a draft runner missing in ssd mode or in
//     sd mode with a backup other than "ngram",
//     vocabulary mismatch) throw std::invalid_argument with a message naming the field and what is
//     allowed; the engine stays usable.
//   - a ModelRunner that throws fails the requests of that round: they finish with
//     FinishReason::kError and Result::error naming the side ("target model runner failed: ...").
//     generate() returns such a Result, it does not throw; check Result::ok().
//   - an exception thrown by on_tokens cancels the request and propagates out of generate().
//   - submit()/generate() after close() throw std::logic_error.
//
// Threads: every member function may be called from any thread, concurrently, except that the
// destructor must not run while another thread is inside a member function. Several threads may
// generate() at once (continuous batching puts their requests in the same rounds). Callbacks run on
// the thread that called generate(), never on an engine worker. The ModelRunners must outlive the
// Engine. close() (idempotent, also run by the destructor) stops the workers; requests still running
// or queued then finish with FinishReason::kError.
#pragma once
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "ssdcore/config.h"
#include "ssdcore/model_runner.h"
#include "ssdcore/request.h"
#include "ssdcore/sampling.h"
#include "ssdcore/stats.h"
#include "ssdcore/token_masker.h"

namespace ssdcore {

using RequestId = std::int64_t;

// A piece of a request's output stream. The tokens of all Events of one request, in order, are its
// output; exactly one Event per request has finished() true, and it is the last one.
struct Event {
  RequestId id = -1;
  std::vector<std::int32_t> tokens;            // newly decided tokens (may be empty)
  FinishReason finish_reason = FinishReason::kNone;
  std::string error;                           // set when finish_reason == kError
  ErrorKind error_kind = ErrorKind::kNone;     // set when finish_reason == kError
  RequestMetrics metrics;                      // valid in the final event

  bool finished() const { return finish_reason != FinishReason::kNone; }
};

// A finished request.
struct Result {
  RequestId id = -1;
  std::vector<std::int32_t> tokens;            // every generated token
  FinishReason finish_reason = FinishReason::kNone;
  std::string error;                           // non-empty iff finish_reason == kError
  ErrorKind error_kind = ErrorKind::kNone;     // set when finish_reason == kError
  RequestMetrics metrics;

  bool ok() const { return finish_reason != FinishReason::kError; }
};

// Streaming callback of generate(): receives each group of newly decided tokens (never empty).
// Return true to continue, false to cancel the request (it then finishes with kCancelled and the
// Result holds the tokens decided so far, possibly a few more than the callback saw).
using TokenCallback = std::function<bool(const std::vector<std::int32_t>& new_tokens)>;

// How submit() hands a request's output back.
enum class Delivery : int {
  kPoll = 0,   // its Events through poll(), or its Result through wait(id)
  kNext,       // its Events, in order, through next(id): one per round that decided tokens
  kNextFinal,  // through next(id), as one final Event carrying every token (no per-round traffic)
};

namespace detail {
struct EngineBuilder;  // internal: builds an Engine over the runtime's own runners (Python binding)
}

class Engine {
 public:
  // Validates config and starts the workers. `draft` may be null only in mode "ar", or in mode "sd"
  // with backup "ngram" (draft-free prompt lookup). eos_ids: token ids that end a request (unless
  // SamplingParams::ignore_eos). token_masker: what constrained requests (SamplingParams::constraint
  // > 0) are masked with (ssdcore/token_masker.h); null = none, then such requests are rejected.
  // Throws std::invalid_argument.
  Engine(const EngineConfig& config, ModelRunner* target, ModelRunner* draft,
         std::vector<std::int32_t> eos_ids = {}, std::shared_ptr<TokenMasker> token_masker = nullptr);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Blocking: runs one request to the end (see the file comment for callbacks and errors).
  Result generate(std::vector<std::int32_t> prompt, const SamplingParams& params,
                  const TokenCallback& on_tokens = nullptr);

  // Async: queues a request and returns its id.
  RequestId submit(std::vector<std::int32_t> prompt, const SamplingParams& params,
                   Delivery delivery = Delivery::kPoll);
  // Blocks until request `id` (from submit) finishes and returns its Result. Throws
  // std::invalid_argument if `id` is unknown or already collected.
  Result wait(RequestId id);
  // The next Event of any submitted (not generate()d, not waited-for) request, in the order the
  // engine produced them. Returns false when none arrived within `timeout`, or when the engine is
  // closed and every event has been returned.
  bool poll(Event* event, std::chrono::milliseconds timeout = std::chrono::milliseconds(100));
  // The next Event of request `id` (submitted with Delivery::kNext or kNextFinal), in order. Returns
  // false when none arrived within `timeout`. Its final Event collects the request. Throws
  // std::invalid_argument if `id` is unknown, collected, or delivered otherwise.
  bool next(RequestId id, Event* event, std::chrono::milliseconds timeout);
  // Asks the engine to stop request `id` after its current round; it then finishes with kCancelled.
  // Unknown or finished ids are ignored.
  void cancel(RequestId id);
  // Stops following request `id`: cancels it and drops its output; it is forgotten once it ends.
  // Unknown ids are ignored.
  void discard(RequestId id);
  // Requests the engine holds: queued, running, or finished and not yet collected (a discarded one
  // until it ends).
  std::size_t pending() const;

  StatsSnapshot stats() const;
  void reset_stats();
  const EngineConfig& config() const;
  std::int64_t vocab_size() const;
  // Stops the workers and joins them; idempotent. Running requests finish with kError.
  void close();

 private:
  class Impl;
  friend struct detail::EngineBuilder;
  explicit Engine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ssdcore
