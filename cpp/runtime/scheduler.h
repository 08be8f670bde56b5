// scheduler.h: admission of requests into the running batch (continuous batching).
//
// Callers (any thread: Python threads, the server) submit requests and cancel them; the target
// worker, between rounds, takes as many new requests as it has free KV lanes and the ids cancelled
// since the last round. wait_for_work() parks the target worker (no spinning) while it has nothing
// to run. All members are mutex-protected; the lock is never held while calling a model.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <unordered_set>
#include <vector>

#include "sequence.h"

namespace ssd {

struct Request {
  int64_t id = -1;
  std::vector<int32_t> prompt;
  SamplingParams params;
  int64_t submit_ns = 0;
  // true: an output event per round that commits tokens; false: one event at the finish carrying
  // every generated token (no wake-up per round for a caller that only wants the result).
  bool stream = true;
};

class Scheduler {
 public:
  // Any thread. submit() returns the request id; it throws std::runtime_error once stopped.
  int64_t submit(std::vector<int32_t> prompt, const SamplingParams& params, bool stream = true);
  void cancel(int64_t id);
  // Refuses further submits, wakes the target worker and returns the requests still queued (the
  // caller fails them).
  std::vector<Request> stop();
  bool stopped() const;

  // Target worker only. wait_for_work blocks while `idle` and nothing is queued or cancelled;
  // it returns false once stopped.
  bool wait_for_work(bool idle);
  std::vector<Request> take_new(size_t max_count);
  std::vector<int64_t> take_cancelled();

 private:
  mutable std::mutex m_;
  std::condition_variable cv_;
  std::deque<Request> queue_;
  std::unordered_set<int64_t> cancelled_;
  int64_t next_id_ = 0;
  bool stopped_ = false;
};

}  // namespace ssd
