// parallel_for.h: run fn(i) for i in [0, n) on up to `threads` std::threads (the caller's included).
//
// Dynamic scheduling through one atomic counter, so uneven items balance. Used by the CPU verifier and
// draft sampler, whose items (rows, sequences) write disjoint outputs. The first exception thrown by an
// item is rethrown on the calling thread after all threads joined. threads <= 1 or n <= 1 runs inline.
// Any thread may call; fn must be safe to run concurrently for distinct i.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace ssd {

// Threads to use when the caller says 0 ("auto"): the hardware's, at most 8.
inline int default_thread_count() {
  const unsigned hw = std::thread::hardware_concurrency();
  return static_cast<int>(std::min(8u, hw == 0 ? 1u : hw));
}

template <class Fn>
void parallel_for(int64_t n, int threads, const Fn& fn) {
  if (threads <= 0) threads = default_thread_count();
  threads = static_cast<int>(std::min<int64_t>(threads, n));
  if (threads <= 1) {
    for (int64_t i = 0; i < n; ++i) fn(i);
    return;
  }
  std::atomic<int64_t> next{0};
  std::exception_ptr error;
  std::mutex error_mutex;
  const auto worker = [&]() {
    for (;;) {
      const int64_t i = next.fetch_add(1, std::memory_order_relaxed);
      if (i >= n) return;
      try {
        fn(i);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::current_exception();
        next.store(n, std::memory_order_relaxed);
      }
    }
  };
  std::vector<std::thread> pool;
  pool.reserve(threads - 1);
  for (int t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (std::thread& th : pool) th.join();
  if (error) std::rethrow_exception(error);
}

}  // namespace ssd
