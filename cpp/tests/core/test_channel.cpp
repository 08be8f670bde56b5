// test_channel.cpp: Channel blocking semantics, close(), timeouts, move-only items, and no-lost-wake-up
// stress tests in which the consumer (or the producer) parks on nearly every item.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "channel.h"
#include "check.h"
#include "stress_util.h"

using namespace std::chrono_literals;
using ssd::Channel;
using ssd::ChannelSpin;
using ssd::PopStatus;
using Clock = std::chrono::steady_clock;

static double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Runs `rescue` (closing the channels under test) if the test is still running after `limit` (minutes:
// only a hang, never a slow machine, gets there), so a
// lost wake-up fails the test instead of hanging it. fired() says whether it had to.
class Watchdog {
 public:
  Watchdog(std::chrono::milliseconds limit, std::function<void()> rescue)
      : thread_([this, limit, rescue] {
          std::unique_lock<std::mutex> lk(m_);
          if (!cv_.wait_for(lk, limit, [this] { return done_; })) {
            fired_ = true;
            rescue();
          }
        }) {}
  ~Watchdog() {
    {
      std::lock_guard<std::mutex> lk(m_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  bool fired() {
    std::lock_guard<std::mutex> lk(m_);
    return fired_;
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  bool done_ = false;
  bool fired_ = false;
  std::thread thread_;
};

SSD_TEST(non_blocking_fifo) {
  Channel<int> ch(4);
  int v = 0;
  SSD_CHECK(!ch.try_pop(v));
  for (int i = 0; i < 4; ++i) SSD_CHECK(ch.try_push(i));
  SSD_CHECK(!ch.try_push(4));
  for (int i = 0; i < 4; ++i) {
    SSD_CHECK(ch.try_pop(v));
    SSD_CHECK_EQ(v, i);
  }
  SSD_CHECK_THROWS(Channel<int>(3));
}

SSD_TEST(blocking_pop_wakes_on_push) {
  Channel<int> ch(4);
  Watchdog dog(300s, [&] { ch.close(); });
  std::atomic<int> got{-1};
  std::thread consumer([&] {
    int v = 0;
    if (ch.pop(v)) got = v;
  });
  std::this_thread::sleep_for(30ms);  // let the consumer park
  SSD_CHECK_EQ(got.load(), -1);
  SSD_CHECK(ch.push(42));
  consumer.join();
  SSD_CHECK_EQ(got.load(), 42);
  SSD_CHECK(!dog.fired());
}

SSD_TEST(blocking_push_waits_while_full) {
  Channel<int> ch(2);
  Watchdog dog(300s, [&] { ch.close(); });
  SSD_CHECK(ch.push(1));
  SSD_CHECK(ch.push(2));
  std::atomic<bool> pushed{false};
  std::thread producer([&] {
    pushed = ch.push(3);
  });
  std::this_thread::sleep_for(30ms);
  SSD_CHECK(!pushed.load());  // still blocked: the channel is full
  int v = 0;
  SSD_CHECK(ch.pop(v));
  SSD_CHECK_EQ(v, 1);
  producer.join();
  SSD_CHECK(pushed.load());
  SSD_CHECK(ch.pop(v));
  SSD_CHECK_EQ(v, 2);
  SSD_CHECK(ch.pop(v));
  SSD_CHECK_EQ(v, 3);
  SSD_CHECK(!dog.fired());
}

SSD_TEST(close_wakes_parked_consumer) {
  Channel<int> ch(4);
  Watchdog dog(300s, [&] { ch.close(); });  // close() is what is tested; the dog only guards a hang
  std::atomic<int> result{-1};
  std::thread consumer([&] {
    int v = 0;
    result = ch.pop(v) ? 1 : 0;
  });
  std::this_thread::sleep_for(30ms);
  ch.close();
  consumer.join();  // a close that did not wake it would hang here (the dog's close, a second one, too)
  SSD_CHECK_EQ(result.load(), 0);
  SSD_CHECK(!dog.fired());
}

SSD_TEST(close_wakes_parked_producer) {
  Channel<int> ch(1);
  SSD_CHECK(ch.push(1));
  std::atomic<int> result{-1};
  std::thread producer([&] { result = ch.push(2) ? 1 : 0; });
  std::this_thread::sleep_for(30ms);
  ch.close();
  producer.join();
  SSD_CHECK_EQ(result.load(), 0);
}

SSD_TEST(close_from_third_thread_wakes_timed_consumer) {
  Channel<int> ch(4);
  PopStatus st = PopStatus::kItem;
  std::thread consumer([&] {
    int v = 0;
    st = ch.pop_for(v, 120s);
  });
  std::thread closer([&] {
    std::this_thread::sleep_for(30ms);
    ch.close();
  });
  consumer.join();
  closer.join();
  SSD_CHECK(st == PopStatus::kClosed);  // not kTimeout: the close woke it
}

SSD_TEST(drains_after_close_and_rejects_pushes) {
  Channel<int> ch(8);
  for (int i = 0; i < 3; ++i) SSD_CHECK(ch.push(i));
  ch.close();
  ch.close();  // idempotent
  SSD_CHECK(ch.closed());
  SSD_CHECK(!ch.push(99));
  SSD_CHECK(!ch.try_push(99));
  int v = -1;
  for (int i = 0; i < 3; ++i) {
    SSD_CHECK(ch.pop(v));
    SSD_CHECK_EQ(v, i);
  }
  SSD_CHECK(!ch.pop(v));
  SSD_CHECK(ch.pop_for(v, 1ms) == PopStatus::kClosed);
  SSD_CHECK(!ch.pop().has_value());
}

SSD_TEST(pop_for_times_out) {
  Channel<int> ch(4);
  int v = 0;
  const auto t0 = Clock::now();
  SSD_CHECK(ch.pop_for(v, 50ms) == PopStatus::kTimeout);
  const double s = seconds_since(t0);
  SSD_CHECK(s >= 0.049);  // never early (how late depends on the machine's load)
  SSD_CHECK(ch.push(5));
  SSD_CHECK(ch.pop_for(v, 50ms) == PopStatus::kItem);
  SSD_CHECK_EQ(v, 5);
}

SSD_TEST(pop_for_gets_item_pushed_while_waiting) {
  Channel<int> ch(4);
  std::thread producer([&] {
    std::this_thread::sleep_for(30ms);
    ch.push(7);
  });
  int v = 0;
  SSD_CHECK(ch.pop_for(v, 10s) == PopStatus::kItem);
  SSD_CHECK_EQ(v, 7);
  producer.join();
}

// ChannelSpin::poll_ns: items arriving while the consumer polls, and items arriving after it parked,
// are both taken; a deadline shorter than the poll is kept; close ends a poll.
SSD_TEST(polling_consumer_gets_items_and_respects_deadlines_and_close) {
  ChannelSpin spin;
  spin.poll_ns = 20'000'000;  // 20 ms
  Channel<int> ch(4, spin);
  std::thread producer([&] {
    ch.push(1);                              // likely while the consumer polls
    std::this_thread::sleep_for(60ms);       // after the poll: the consumer has parked
    ch.push(2);
  });
  int v = 0;
  SSD_CHECK(ch.pop(v));
  SSD_CHECK_EQ(v, 1);
  SSD_CHECK(ch.pop(v));
  SSD_CHECK_EQ(v, 2);
  producer.join();
  // A 600 s poll: the deadline and close must cut it short (no loaded machine takes minutes for a
  // 5 ms deadline, so the bounds below only fail when the poll ran on).
  spin.poll_ns = 600'000'000'000;
  Channel<int> slow(4, spin);
  auto t0 = Clock::now();
  SSD_CHECK(slow.pop_for(v, 5ms) == PopStatus::kTimeout);
  SSD_CHECK(seconds_since(t0) < 120.0);
  std::thread closer([&] {
    std::this_thread::sleep_for(5ms);
    slow.close();
  });
  t0 = Clock::now();
  SSD_CHECK(!slow.pop(v));  // closed while polling: no item, and well before the poll would end
  SSD_CHECK(seconds_since(t0) < 120.0);
  closer.join();
}

SSD_TEST(move_only_items) {
  Channel<std::unique_ptr<int>> ch(2);
  SSD_CHECK(ch.push(std::make_unique<int>(1)));
  auto p = std::make_unique<int>(2);
  SSD_CHECK(ch.push(std::move(p)));
  SSD_CHECK(p == nullptr);
  auto first = ch.pop();
  SSD_CHECK(first.has_value() && **first == 1);
  std::unique_ptr<int> out;
  SSD_CHECK(ch.pop(out));
  SSD_CHECK_EQ(*out, 2);
  ch.close();
  auto q = std::make_unique<int>(3);
  SSD_CHECK(!ch.push(std::move(q)));
  SSD_CHECK(q != nullptr && *q == 3);  // a rejected push leaves the value untouched
}

// Producer pushes n items; the consumer must see them all in order. With no spinning and a tiny
// capacity, both sides park all the time: a lost wake-up shows up as a pop_for timeout (not a hang).
// The timeout is far longer than any wake-up on a loaded machine, so only a lost one reaches it.
static void park_stress(std::size_t capacity, std::uint64_t n, bool slow_consumer) {
  Channel<std::uint64_t> ch(capacity, ChannelSpin{0, 0});
  std::atomic<bool> ok{true};
  std::atomic<std::uint64_t> received{0};
  std::thread consumer([&] {
    std::uint64_t v = 0;
    for (std::uint64_t expect = 0; expect < n; ++expect) {
      // A wake-up takes microseconds (milliseconds on a busy machine); a pop that times out on an
      // item that was pushed meanwhile means a lost wake-up.
      if (ch.pop_for(v, 60s) != PopStatus::kItem || v != expect) {
        ok = false;
        ch.close();  // release a producer blocked on a full channel
        break;
      }
      received = expect + 1;
      if (slow_consumer && expect % 64 == 0) std::this_thread::yield();
    }
  });
  for (std::uint64_t i = 0; i < n; ++i) {
    if (!ch.push(i)) {
      ok = false;
      break;
    }
    if (!slow_consumer && i % 64 == 0) std::this_thread::yield();
  }
  consumer.join();
  SSD_CHECK(ok.load());
  SSD_CHECK_EQ(received.load(), n);
}

SSD_TEST(no_lost_wakeup_consumer_parks) {
  const auto t0 = Clock::now();
  park_stress(4, ssd_test::scaled(100000, 4), false);
  std::printf("  consumer-parking stress in %.2f s\n", seconds_since(t0));
}

// The producer parks on a full channel of capacity 1 and relies on the consumer's wake-up.
SSD_TEST(no_lost_wakeup_producer_parks) {
  park_stress(1, ssd_test::scaled(100000, 4), true);
}

// Request/response ping-pong over two channels: every message crosses a parked thread.
SSD_TEST(no_lost_wakeup_ping_pong) {
  Channel<int> ping(1, ChannelSpin{0, 0}), pong(1, ChannelSpin{0, 0});
  Watchdog dog(300s, [&] { ping.close(); });
  const int n = static_cast<int>(ssd_test::scaled(20000, 4));
  std::atomic<bool> ok{true};
  std::thread echo([&] {
    int v = 0;
    while (ping.pop(v)) {
      if (!pong.push(v + 1)) break;
    }
    pong.close();
  });
  for (int i = 0; i < n && ok; ++i) {
    int v = -1;
    SSD_CHECK(ping.push(i));
    if (pong.pop_for(v, 60s) != PopStatus::kItem || v != i + 1) ok = false;  // 60 s: only if lost
  }
  ping.close();
  echo.join();
  SSD_CHECK(ok.load());
  SSD_CHECK(!dog.fired());
}

// Default spin settings: a fast stream with no artificial parking, order preserved.
SSD_TEST(default_spin_stream) {
  Channel<std::uint64_t> ch(64);
  Watchdog dog(300s, [&] { ch.close(); });
  const std::uint64_t n = ssd_test::scaled(500000, 4);
  std::uint64_t sum = 0;
  std::thread consumer([&] {
    std::uint64_t v = 0, expect = 0;
    while (ch.pop(v)) {
      if (v != expect++) break;
      sum += v;
    }
  });
  for (std::uint64_t i = 0; i < n; ++i) ch.push(i);
  ch.close();
  consumer.join();
  SSD_CHECK_EQ(sum, n * (n - 1) / 2);
  SSD_CHECK(!dog.fired());
}

int main() { return ssd_test::run_all(); }
