// thread_team.h: ThreadTeam, the threads one native forward (cpu_model.h) splits its work over.
//
// Concept: the calling thread plus size() - 1 persistent helper threads. run(fn) calls fn(part) once
// for each part in [0, size()): part 0 on the caller, the others on the helpers, and returns when all
// have returned. A forward calls run() for each weight product and attention (a few hundred times per
// token for a 30-layer model), so a run must cost microseconds: helpers poll for the next run for
// `spin_ns` after finishing one (the products of one forward follow each other closely), then park on
// a condition variable, so between forwards (while the other model's worker runs) they use no core.
//
// Invariants: parts write disjoint outputs, so results do not depend on the team's size or on timing
// (cpu_model.cpp splits each product by blocks of output columns and attention by (row, kv head)
// items; every output is computed by the same code either way). The first exception thrown by a part is
// rethrown by run() after every part has returned.
//
// Threads: one thread at a time calls run() (the worker that owns the runner); helpers are pinned to
// `cores` when given (Linux), like the worker itself. The destructor stops and joins the helpers.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace ssd {

// Pins the calling thread to `cores` (Linux; elsewhere, and for an empty list, a no-op). Throws
// std::runtime_error naming the cores (and the reason) when a core is out of range or the OS refuses.
void pin_current_thread(const std::vector<int>& cores);

class ThreadTeam {
 public:
  // threads >= 1 (std::invalid_argument otherwise); threads - 1 helpers are started at once. An
  // empty `cores` leaves them unpinned; otherwise each helper is pinned to the whole set (std::runtime_error
  // naming the cores when that fails).
  explicit ThreadTeam(int threads, std::vector<int> cores = {}, std::int64_t spin_ns = 200000);
  ~ThreadTeam();
  ThreadTeam(const ThreadTeam&) = delete;
  ThreadTeam& operator=(const ThreadTeam&) = delete;

  int size() const { return static_cast<int>(helpers_.size()) + 1; }
  void run(const std::function<void(int)>& fn);

  // [begin, end) of `count` items for `part` of `parts`: contiguous, sizes differing by at most one.
  static void split(std::int64_t count, int parts, int part, std::int64_t* begin, std::int64_t* end);

 private:
  void helper(int part);
  void call(int part);
  void shutdown();

  const std::int64_t spin_ns_;
  const std::function<void(int)>* fn_ = nullptr;  // the current run's work (valid while it runs)
  std::atomic<std::uint64_t> generation_{0};       // one increment per run
  std::atomic<int> pending_{0};                    // helpers that have not finished the current run
  std::atomic<bool> stop_{false};
  std::mutex m_;
  std::condition_variable cv_;
  std::exception_ptr error_;                       // under m_
  std::vector<std::thread> helpers_;
};

}  // namespace ssd
