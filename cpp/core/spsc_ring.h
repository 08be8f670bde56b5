// spsc_ring.h: SpscRing<T>, a bounded single-producer single-consumer lock-free ring buffer.
//
// This is the runtime's ONE lock-free primitive; everything else that crosses threads is built on it
// (Channel<T>, channel.h) or uses a mutex.
//
// Concept: a fixed array of `capacity` slots (a power of two) and two monotonically increasing
// 64-bit counters: `tail_` (next slot the producer writes, advanced only by the producer) and `head_`
// (next slot the consumer reads, advanced only by the consumer). Slot index = counter & (capacity-1).
//
// Invariants:
//   - 0 <= tail_ - head_ <= capacity at all times (the counters never wrap in practice: 2^64 items).
//   - Slots [head_, tail_) hold constructed T objects; all other slots are raw storage.
//   - Only the producer writes tail_ and the slot at tail_; only the consumer writes head_ and
//     destroys the object at head_.
//
// Memory ordering (the whole correctness argument):
//   - Producer: construct T in slot tail_ (plain write), then tail_.store(t+1, release). The consumer
//     loads tail_ with acquire, so seeing t+1 makes the constructed object visible to it.
//   - Consumer: move out of and destroy slot head_ (plain writes), then head_.store(h+1, release). The
//     producer loads head_ with acquire before reusing that slot, so the destruction happens-before
//     the producer's next construction there.
//   - Each side keeps a private cached copy of the other side's counter and reloads it (acquire) only
//     when the cached value says full/empty, so the hot path touches no shared cache line but its own.
//   - tail_ (+ producer cache) and head_ (+ consumer cache) live on separate 64-byte cache lines; the
//     read-only geometry lives on a third, so the two threads never false-share.
//
// Threads: exactly one producer thread may call try_push/try_emplace and exactly one consumer thread
// may call try_pop at any time (the roles may move to another thread only with external
// happens-before, e.g. a thread join). size_approx/empty_approx/capacity may be called from any
// thread; the sizes are a snapshot that may be stale by the time they return. Construction and
// destruction must not race with any other call. The destructor destroys the items still queued.
//
// Exception safety: if T's constructor (push) or move assignment (pop) throws, the ring is unchanged.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

namespace ssd {

// Cache line size assumed for padding (x86-64 and most ARM server cores). A constant rather than
// std::hardware_destructive_interference_size, whose value GCC warns may differ between compilers.
inline constexpr std::size_t kCacheLineBytes = 64;

template <class T>
class SpscRing {
 public:
  // capacity: number of slots, a power of two >= 1 (throws std::invalid_argument otherwise).
  explicit SpscRing(std::size_t capacity) : mask_(checked_capacity(capacity) - 1) {
    slots_ = std::make_unique<Slot[]>(capacity);
  }
  ~SpscRing() {
    std::size_t h = head_.load(std::memory_order_relaxed);
    const std::size_t t = tail_.load(std::memory_order_relaxed);
    for (; h != t; ++h) slot(h)->~T();
  }
  SpscRing(const SpscRing&) = delete;
  SpscRing& operator=(const SpscRing&) = delete;

  // Producer only. Constructs T(args...) in the next slot; false (and nothing constructed) when full.
  template <class... Args>
  bool try_emplace(Args&&... args) {
    const std::size_t t = tail_.load(std::memory_order_relaxed);  // only we write tail_
    if (t - cached_head_ > mask_) {                               // looks full: refresh
      cached_head_ = head_.load(std::memory_order_acquire);
      if (t - cached_head_ > mask_) return false;
    }
    ::new (static_cast<void*>(slot(t))) T(std::forward<Args>(args)...);
    tail_.store(t + 1, std::memory_order_release);
    return true;
  }
  // Producer only. Moves v into the ring; when full returns false and leaves v untouched.
  bool try_push(T&& v) { return try_emplace(std::move(v)); }
  // Producer only. Copies v into the ring (only for copyable T); false when full.
  bool try_push(const T& v) { return try_emplace(v); }

  // Consumer only. Moves the oldest item into out and destroys it in the ring; false when empty.
  bool try_pop(T& out) {
    const std::size_t h = head_.load(std::memory_order_relaxed);  // only we write head_
    if (h == cached_tail_) {                                      // looks empty: refresh
      cached_tail_ = tail_.load(std::memory_order_acquire);
      if (h == cached_tail_) return false;
    }
    T* p = slot(h);
    out = std::move(*p);
    p->~T();
    head_.store(h + 1, std::memory_order_release);
    return true;
  }

  std::size_t capacity() const { return mask_ + 1; }
  // Any thread. Number of queued items at some recent instant, in [0, capacity].
  std::size_t size_approx() const {
    const std::size_t h = head_.load(std::memory_order_acquire);
    const std::size_t t = tail_.load(std::memory_order_acquire);  // loaded after h, so t >= h
    const std::size_t n = t - h;
    return n > capacity() ? capacity() : n;
  }
  bool empty_approx() const { return size_approx() == 0; }

 private:
  struct alignas(T) Slot {
    unsigned char bytes[sizeof(T)];
  };

  static std::size_t checked_capacity(std::size_t capacity) {
    const bool pow2 = capacity != 0 && (capacity & (capacity - 1)) == 0;
    if (!pow2 || capacity > (std::size_t{1} << 40)) {
      throw std::invalid_argument("SpscRing capacity = " + std::to_string(capacity) +
                                  " is invalid: allowed a power of two in 1..2^40");
    }
    return capacity;
  }
  T* slot(std::size_t i) { return std::launder(reinterpret_cast<T*>(slots_[i & mask_].bytes)); }

  // Read-only after construction (its own cache line).
  alignas(kCacheLineBytes) const std::size_t mask_;
  std::unique_ptr<Slot[]> slots_;
  // Producer's line: tail_ and the producer's private copy of head_.
  alignas(kCacheLineBytes) std::atomic<std::size_t> tail_{0};
  std::size_t cached_head_ = 0;
  // Consumer's line: head_ and the consumer's private copy of tail_.
  alignas(kCacheLineBytes) std::atomic<std::size_t> head_{0};
  std::size_t cached_tail_ = 0;
};

}  // namespace ssd
