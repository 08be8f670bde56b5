// scheduler.cpp: see scheduler.h.
#include "scheduler.h"

#include <algorithm>
#include <iterator>
#include <stdexcept>

#include "stats.h"

namespace ssd {

int64_t Scheduler::submit(std::vector<int32_t> prompt, const SamplingParams& params, bool stream) {
  std::lock_guard<std::mutex> lock(m_);
  if (stopped_) throw std::runtime_error("the engine is closed; create a new Engine");
  Request r;
  r.id = next_id_++;
  r.prompt = std::move(prompt);
  r.params = params;
  r.submit_ns = now_ns();
  r.stream = stream;
  int64_t id = r.id;
  queue_.push_back(std::move(r));
  cv_.notify_all();
  return id;
}

void Scheduler::cancel(int64_t id) {
  std::lock_guard<std::mutex> lock(m_);
  cancelled_.insert(id);
  cv_.notify_all();
}

std::vector<Request> Scheduler::stop() {
  std::lock_guard<std::mutex> lock(m_);
  stopped_ = true;
  cv_.notify_all();
  std::vector<Request> queued(std::make_move_iterator(queue_.begin()), std::make_move_iterator(queue_.end()));
  queue_.clear();
  return queued;
}

bool Scheduler::stopped() const {
  std::lock_guard<std::mutex> lock(m_);
  return stopped_;
}

bool Scheduler::wait_for_work(bool idle) {
  std::unique_lock<std::mutex> lock(m_);
  if (idle) cv_.wait(lock, [&] { return stopped_ || !queue_.empty() || !cancelled_.empty(); });
  return !stopped_;
}

std::vector<Request> Scheduler::take_new(size_t max_count) {
  std::lock_guard<std::mutex> lock(m_);
  std::vector<Request> out;
  while (!queue_.empty() && out.size() < max_count) {
    out.push_back(std::move(queue_.front()));
    queue_.pop_front();
  }
  return out;
}

std::vector<int64_t> Scheduler::take_cancelled() {
  std::lock_guard<std::mutex> lock(m_);
  std::vector<int64_t> out;
  for (auto it = cancelled_.begin(); it != cancelled_.end();) {
    // A request still waiting in the queue keeps its cancellation until take_new() hands it out
    // (the target worker ignores cancellations of requests it has not admitted yet).
    const int64_t id = *it;
    if (std::any_of(queue_.begin(), queue_.end(), [id](const Request& r) { return r.id == id; })) {
      ++it;
      continue;
    }
    out.push_back(id);
    it = cancelled_.erase(it);
  }
  return out;
}

}  // namespace ssd
