// thread_team.cpp: see thread_team.h.
#include "thread_team.h"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <string>

#include "channel.h"  // detail::cpu_relax

#ifdef __linux__
#include <sched.h>
#endif

namespace ssd {
namespace {

constexpr int kSpinsBeforeYield = 2048;  // cpu_relax() iterations (~ tens of microseconds)

std::int64_t steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

void pin_current_thread(const std::vector<int>& cores) {
#ifdef __linux__
  if (cores.empty()) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  for (int c : cores) {
    if (c < 0 || c >= CPU_SETSIZE)
      throw std::runtime_error("core " + std::to_string(c) + " is out of range: allowed 0.." + std::to_string(CPU_SETSIZE - 1));
    CPU_SET(c, &set);
  }
  if (sched_setaffinity(0, sizeof set, &set) != 0) {  // 0 = the calling thread
    const int err = errno;
    std::string list;
    for (int c : cores) list += (list.empty() ? "" : ", ") + std::to_string(c);
    throw std::runtime_error("could not pin the thread to cores [" + list + "]: " + std::strerror(err));
  }
#else
  (void)cores;
#endif
}

ThreadTeam::ThreadTeam(int threads, std::vector<int> cores, std::int64_t spin_ns) : spin_ns_(spin_ns) {
  if (threads < 1) throw std::invalid_argument("ThreadTeam: threads = " + std::to_string(threads) + ", allowed >= 1");
  std::exception_ptr pin_error;
  std::mutex pin_mutex;
  std::atomic<int> started{0};
  for (int part = 1; part < threads; ++part) {
    helpers_.emplace_back([this, part, &cores, &pin_error, &pin_mutex, &started] {
      try {
        pin_current_thread(cores);
      } catch (...) {
        std::lock_guard<std::mutex> lock(pin_mutex);
        if (!pin_error) pin_error = std::current_exception();
      }
      started.fetch_add(1, std::memory_order_acq_rel);
      helper(part);
    });
  }
  while (started.load(std::memory_order_acquire) < threads - 1) std::this_thread::yield();
  if (pin_error) {
    shutdown();
    std::rethrow_exception(pin_error);
  }
}

ThreadTeam::~ThreadTeam() { shutdown(); }

void ThreadTeam::shutdown() {
  {
    std::lock_guard<std::mutex> lock(m_);
    stop_.store(true, std::memory_order_release);
  }
  cv_.notify_all();
  for (std::thread& t : helpers_)
    if (t.joinable()) t.join();
}

void ThreadTeam::split(std::int64_t count, int parts, int part, std::int64_t* begin, std::int64_t* end) {
  const std::int64_t base = count / parts, extra = count % parts;
  *begin = part * base + (part < extra ? part : extra);
  *end = *begin + base + (part < extra ? 1 : 0);
}

void ThreadTeam::call(int part) {
  try {
    (*fn_)(part);
  } catch (...) {
    std::lock_guard<std::mutex> lock(m_);
    if (!error_) error_ = std::current_exception();
  }
}

void ThreadTeam::run(const std::function<void(int)>& fn) {
  if (helpers_.empty()) return fn(0);
  fn_ = &fn;
  pending_.store(size() - 1, std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> lock(m_);  // a parked helper re-checks the generation under m_
    generation_.fetch_add(1, std::memory_order_release);
  }
  cv_.notify_all();
  call(0);
  // Poll, and yield once in a while: on a machine with more runnable threads than cores, a helper
  // that has not finished may be waiting for this very core.
  for (int spins = 0; pending_.load(std::memory_order_acquire) != 0; ++spins) {
    if (spins < kSpinsBeforeYield) {
      detail::cpu_relax();
    } else {
      std::this_thread::yield();
    }
  }
  fn_ = nullptr;
  std::exception_ptr error;
  {
    std::lock_guard<std::mutex> lock(m_);
    std::swap(error, error_);
  }
  if (error) std::rethrow_exception(error);
}

void ThreadTeam::helper(int part) {
  std::uint64_t seen = 0;
  for (;;) {
    // poll for the next run for spin_ns, then park until one comes (or stop)
    const std::int64_t until = steady_ns() + spin_ns_;
    std::uint64_t now = generation_.load(std::memory_order_acquire);
    for (int spins = 0; now == seen && !stop_.load(std::memory_order_acquire) && steady_ns() < until; ++spins) {
      if (spins % kSpinsBeforeYield == kSpinsBeforeYield - 1) {
        std::this_thread::yield();  // let a runnable thread have this core now and then (see run())
      } else {
        detail::cpu_relax();
      }
      now = generation_.load(std::memory_order_acquire);
    }
    if (now == seen && !stop_.load(std::memory_order_acquire)) {
      std::unique_lock<std::mutex> lock(m_);
      cv_.wait(lock, [&] {
        return generation_.load(std::memory_order_acquire) != seen || stop_.load(std::memory_order_acquire);
      });
      now = generation_.load(std::memory_order_acquire);
    }
    if (stop_.load(std::memory_order_acquire)) return;
    seen = now;
    call(part);
    pending_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

}  // namespace ssd
