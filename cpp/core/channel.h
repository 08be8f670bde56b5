// channel.h: Channel<T>, a bounded blocking single-producer single-consumer queue with close().
//
// Concept: an SpscRing<T> (the lock-free fast path) plus a parking slow path. A blocking call first
// retries the ring briefly (a few hundred CPU-pause iterations and a couple of yields, see
// ChannelSpin), then parks on a condition variable, so a waiting worker does not burn a core that a
// model needs. This is the only path between the draft and target workers; the lead defines the
// message types.
//
// Threads: one producer thread calls push/try_push; one consumer thread calls pop/pop_for/try_pop
// (as for SpscRing, a role may move to another thread only with external happens-before). close(),
// closed(), size_approx() and capacity() may be called from any thread. The Channel must outlive
// every thread that uses it.
//
// close() semantics (shutdown never hangs):
//   - close() is idempotent and wakes every parked producer and consumer.
//   - After close, push/try_push return false and leave the value untouched (not moved from).
//   - After close, pop/pop_for/try_pop still return the items already queued ("drain"), then
//     pop returns false, pop_for returns PopStatus::kClosed and try_pop returns false.
//   - A push racing with close may either fail or succeed; an item that succeeds after the consumer
//     has already seen "closed and empty" stays in the ring and is destroyed with the Channel.
//
// No lost wake-ups (the handshake, for the consumer; the producer's wait on "full" is the mirror):
//   Consumer (parking):   lock m_; consumer_parked_.exchange(1, acq_rel); re-check the ring; cv wait.
//   Producer (each push): tail_.store(release) [inside the ring];
//                         if consumer_parked_.fetch_add(0, acq_rel) != 0: lock m_, unlock, notify.
//   Both are read-modify-writes of the same atomic, so they are totally ordered in its modification
//   order and each reads the value just before it. If the consumer's exchange comes first, the
//   producer's RMW reads 1 and notifies. If the producer's RMW comes first, the consumer's exchange
//   reads from it (a release RMW read by an acquire RMW: synchronizes-with), so the new tail_
//   happens-before the consumer's re-check, which therefore sees the item and does not sleep.
//   The consumer sets the flag and re-checks while holding m_, and the producer takes m_ before it
//   notifies, so the notify cannot fall between the re-check and the wait (cv.wait releases m_
//   atomically; the producer can only acquire m_ after that). A stale 1 costs one spurious notify,
//   never correctness. close() sets closed_ while holding m_, so a parked thread's predicate check
//   (under m_) either sees it or the thread is already waiting when notify_all comes.
//   We use RMWs on the flag rather than two seq_cst fences (the textbook Dekker): same guarantee at
//   about the same cost (one locked instruction per push/pop; the flag's cache line stays with the
//   pushing core while nobody parks), and ThreadSanitizer, which does not model standalone fences,
//   can check it.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>

#include "spsc_ring.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace ssd {

namespace detail {
// One short CPU hint for spin-wait loops (lets the sibling hyperthread run, saves power).
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__) || defined(__arm__)
  asm volatile("yield" ::: "memory");
#else
  std::this_thread::yield();
#endif
}
}  // namespace detail

// How long a blocking call retries the lock-free path before parking.
struct ChannelSpin {
  int pauses = 256;  // cpu_relax() iterations (~ a few microseconds in total)
  int yields = 2;    // then this many std::this_thread::yield() before parking
  // A consumer then keeps polling (cpu_relax) for up to this long before it parks: for a consumer
  // whose core has nothing else to do, so that an item arriving within it is taken in about a
  // microsecond instead of after a wake-up (tens of microseconds on a VM). 0 = park right away.
  std::int64_t poll_ns = 0;
};

enum class PopStatus { kItem, kTimeout, kClosed };

template <class T>
class Channel {
 public:
  // capacity: a power of two >= 1 (std::invalid_argument otherwise).
  explicit Channel(std::size_t capacity, ChannelSpin spin = {}) : ring_(capacity), spin_(spin) {}
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  // ---- producer -----------------------------------------------------------------------------
  // Non-blocking: false when full or closed (v untouched).
  bool try_push(T&& v) {
    if (closed()) return false;
    if (!ring_.try_push(std::move(v))) return false;
    wake_consumer();
    return true;
  }
  // Blocks while full. true once queued; false when the channel is (or becomes) closed, v untouched.
  bool push(T&& v) {
    for (int i = 0; i < spin_budget(); ++i) {
      if (closed()) return false;
      if (ring_.try_push(std::move(v))) {
        wake_consumer();
        return true;
      }
      backoff(i);
    }
    if (!park_until_pushed(v)) return false;
    wake_consumer();
    return true;
  }
  // Copying overloads (instantiated only for copyable T).
  bool push(const T& v) {
    T copy(v);
    return push(std::move(copy));
  }
  bool try_push(const T& v) {
    T copy(v);
    return try_push(std::move(copy));
  }

  // ---- consumer -----------------------------------------------------------------------------
  // Non-blocking: true with an item, false when empty (closed or not).
  bool try_pop(T& out) {
    if (!ring_.try_pop(out)) return false;
    wake_producer();
    return true;
  }
  // Blocks until an item arrives (true) or the channel is closed and drained (false).
  bool pop(T& out) { return pop_until(out, nullptr) == PopStatus::kItem; }
  // Same, as an optional (requires default-constructible T).
  std::optional<T> pop() {
    std::optional<T> out(std::in_place);
    if (!pop(*out)) out.reset();
    return out;
  }
  // Like pop, but gives up after `timeout`: kItem, kTimeout, or kClosed (closed and drained).
  template <class Rep, class Period>
  PopStatus pop_for(T& out, std::chrono::duration<Rep, Period> timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    return pop_until(out, &deadline);
  }

  // ---- any thread ---------------------------------------------------------------------------
  void close() {
    {
      std::lock_guard<std::mutex> lk(m_);
      closed_.store(true, std::memory_order_seq_cst);
    }
    not_empty_.notify_all();
    not_full_.notify_all();
  }
  bool closed() const { return closed_.load(std::memory_order_acquire); }
  std::size_t size_approx() const { return ring_.size_approx(); }
  std::size_t capacity() const { return ring_.capacity(); }

 private:
  using Clock = std::chrono::steady_clock;

  int spin_budget() const { return spin_.pauses + spin_.yields; }
  void backoff(int i) const {
    if (i < spin_.pauses) {
      detail::cpu_relax();
    } else {
      std::this_thread::yield();
    }
  }

  // Consumer. deadline == nullptr: wait forever.
  PopStatus pop_until(T& out, const Clock::time_point* deadline) {
    for (int i = 0; i < spin_budget(); ++i) {
      if (try_pop(out)) return PopStatus::kItem;
      if (closed()) return drain_after_close(out);
      backoff(i);
    }
    if (spin_.poll_ns > 0 && poll(out, deadline)) return PopStatus::kItem;
    return park_until_popped(out, deadline);
  }
  // ChannelSpin::poll_ns of polling (never past the deadline): true with an item. Returns false on close
  // too; parking then sees it.
  bool poll(T& out, const Clock::time_point* deadline) {
    auto until = Clock::now() + std::chrono::nanoseconds(spin_.poll_ns);
    if (deadline != nullptr && *deadline < until) until = *deadline;
    while (!closed()) {
      for (int i = 0; i < 32; ++i) {
        if (try_pop(out)) return true;
        detail::cpu_relax();
      }
      if (Clock::now() >= until) return false;
    }
    return false;
  }
  // closed_ was seen (acquire): every push that completed before close() is visible now.
  PopStatus drain_after_close(T& out) { return try_pop(out) ? PopStatus::kItem : PopStatus::kClosed; }

  PopStatus park_until_popped(T& out, const Clock::time_point* deadline) {
    PopStatus status = PopStatus::kTimeout;
    {
      std::unique_lock<std::mutex> lk(m_);
      consumer_parked_.exchange(1, std::memory_order_acq_rel);  // pairs with wake_consumer
      for (;;) {
        if (ring_.try_pop(out)) { status = PopStatus::kItem; break; }
        if (closed()) { status = ring_.try_pop(out) ? PopStatus::kItem : PopStatus::kClosed; break; }
        if (deadline == nullptr) {
          not_empty_.wait(lk);
        } else if (not_empty_.wait_until(lk, *deadline) == std::cv_status::timeout) {
          if (ring_.try_pop(out)) status = PopStatus::kItem;
          break;
        }
      }
      consumer_parked_.store(0, std::memory_order_relaxed);
    }
    if (status == PopStatus::kItem) wake_producer();
    return status;
  }

  // Producer: park until v is in the ring (true) or the channel is closed (false, v untouched).
  bool park_until_pushed(T& v) {
    std::unique_lock<std::mutex> lk(m_);
    producer_parked_.exchange(1, std::memory_order_acq_rel);  // pairs with wake_producer
    bool pushed = false;
    while (!closed()) {
      if (ring_.try_push(std::move(v))) { pushed = true; break; }
      not_full_.wait(lk);
    }
    producer_parked_.store(0, std::memory_order_relaxed);
    return pushed;
  }

  // Called by the producer right after it advanced tail_ (see the handshake in the header comment).
  void wake_consumer() {
    if (consumer_parked_.fetch_add(0, std::memory_order_acq_rel) == 0) return;
    { std::lock_guard<std::mutex> lk(m_); }
    not_empty_.notify_one();
  }
  // Called by the consumer right after it advanced head_ (mirror of wake_consumer).
  void wake_producer() {
    if (producer_parked_.fetch_add(0, std::memory_order_acq_rel) == 0) return;
    { std::lock_guard<std::mutex> lk(m_); }
    not_full_.notify_one();
  }

  SpscRing<T> ring_;
  const ChannelSpin spin_;
  std::atomic<bool> closed_{false};
  alignas(kCacheLineBytes) std::atomic<int> consumer_parked_{0};  // 1 while the consumer parks
  alignas(kCacheLineBytes) std::atomic<int> producer_parked_{0};  // 1 while the producer parks
  std::mutex m_;
  std::condition_variable not_empty_;  // consumer parks here
  std::condition_variable not_full_;   // producer parks here
};

}  // namespace ssd
