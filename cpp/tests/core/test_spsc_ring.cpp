// test_spsc_ring.cpp: SpscRing semantics (single thread) and a two-thread order/no-loss stress test.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <thread>

#include "check.h"
#include "spsc_ring.h"
#include "stress_util.h"

using ssd::SpscRing;

SSD_TEST(rejects_non_power_of_two_capacity) {
  SSD_CHECK_THROWS(SpscRing<int>(0));
  SSD_CHECK_THROWS(SpscRing<int>(3));
  SSD_CHECK_THROWS(SpscRing<int>(100));
  SpscRing<int> one(1), big(1024);
  SSD_CHECK_EQ(one.capacity(), 1u);
  SSD_CHECK_EQ(big.capacity(), 1024u);
}

SSD_TEST(fifo_full_and_empty) {
  SpscRing<int> r(4);
  int v = -1;
  SSD_CHECK(r.empty_approx());
  SSD_CHECK(!r.try_pop(v));
  for (int i = 0; i < 4; ++i) SSD_CHECK(r.try_push(i));
  SSD_CHECK(!r.try_push(99));
  SSD_CHECK_EQ(r.size_approx(), 4u);
  for (int i = 0; i < 4; ++i) {
    SSD_CHECK(r.try_pop(v));
    SSD_CHECK_EQ(v, i);
  }
  SSD_CHECK(!r.try_pop(v));
  SSD_CHECK_EQ(r.size_approx(), 0u);
}

SSD_TEST(capacity_one) {
  SpscRing<int> r(1);
  int v = 0;
  for (int i = 0; i < 10; ++i) {
    SSD_CHECK(r.try_push(i));
    SSD_CHECK(!r.try_push(i));
    SSD_CHECK(r.try_pop(v));
    SSD_CHECK_EQ(v, i);
    SSD_CHECK(!r.try_pop(v));
  }
}

SSD_TEST(wrap_around_many_times) {
  SpscRing<std::uint64_t> r(8);
  std::uint64_t next_push = 0, next_pop = 0, v = 0;
  for (int round = 0; round < 1000; ++round) {
    const int burst = 1 + round % 8;  // vary the fill level so every slot offset is exercised
    for (int i = 0; i < burst; ++i) SSD_CHECK(r.try_push(next_push++));
    for (int i = 0; i < burst; ++i) {
      SSD_CHECK(r.try_pop(v));
      SSD_CHECK_EQ(v, next_pop);
      ++next_pop;
    }
  }
  SSD_CHECK(next_push > 1000 * 4);
  SSD_CHECK(!r.try_pop(v));
}

SSD_TEST(move_only_items) {
  SpscRing<std::unique_ptr<int>> r(2);
  auto p = std::make_unique<int>(7);
  SSD_CHECK(r.try_push(std::move(p)));
  SSD_CHECK(p == nullptr);
  SSD_CHECK(r.try_push(std::make_unique<int>(8)));
  auto q = std::make_unique<int>(9);
  SSD_CHECK(!r.try_push(std::move(q)));  // full: q untouched
  SSD_CHECK(q != nullptr && *q == 9);
  std::unique_ptr<int> out;
  SSD_CHECK(r.try_pop(out));
  SSD_CHECK_EQ(*out, 7);
  SSD_CHECK(r.try_emplace(new int(10)));
  SSD_CHECK(r.try_pop(out));
  SSD_CHECK_EQ(*out, 8);
  SSD_CHECK(r.try_pop(out));
  SSD_CHECK_EQ(*out, 10);
}

struct Counted {
  static int live;
  int v = 0;
  Counted() { ++live; }
  explicit Counted(int x) : v(x) { ++live; }
  Counted(const Counted& o) : v(o.v) { ++live; }
  Counted& operator=(const Counted&) = default;
  ~Counted() { --live; }
};
int Counted::live = 0;

SSD_TEST(destructor_destroys_queued_items) {
  {
    SpscRing<Counted> r(8);
    for (int i = 0; i < 5; ++i) SSD_CHECK(r.try_emplace(i));
    Counted out;
    SSD_CHECK(r.try_pop(out));
    SSD_CHECK_EQ(Counted::live, 5);  // 4 queued + out
  }
  SSD_CHECK_EQ(Counted::live, 0);
}

struct ThrowsOnNegative {
  int v = 0;
  ThrowsOnNegative() = default;
  explicit ThrowsOnNegative(int x) : v(x) {
    if (x < 0) throw std::runtime_error("negative");
  }
};

SSD_TEST(throwing_constructor_leaves_ring_unchanged) {
  SpscRing<ThrowsOnNegative> r(2);
  SSD_CHECK(r.try_emplace(1));
  SSD_CHECK_THROWS(r.try_emplace(-1));
  SSD_CHECK_EQ(r.size_approx(), 1u);
  SSD_CHECK(r.try_emplace(2));
  ThrowsOnNegative out;
  SSD_CHECK(r.try_pop(out));
  SSD_CHECK_EQ(out.v, 1);
  SSD_CHECK(r.try_pop(out));
  SSD_CHECK_EQ(out.v, 2);
}

// Payload with a checksum so a torn or stale slot read is detected, not just a wrong order.
struct Item {
  std::uint64_t seq = 0;
  std::uint64_t check = 0;
};
constexpr std::uint64_t kMix = 0x9E3779B97F4A7C15ull;

// One producer, one consumer, n items through a ring of `capacity`; verifies order and no loss.
static void stress(std::size_t capacity, std::uint64_t n) {
  SpscRing<Item> r(capacity);
  std::atomic<bool> ok{true};
  std::thread consumer([&] {
    Item it;
    for (std::uint64_t expect = 0; expect < n;) {
      if (!r.try_pop(it)) {
        std::this_thread::yield();  // be gentle: the machine's cores are shared
        continue;
      }
      if (it.seq != expect || it.check != (it.seq ^ kMix)) ok = false;
      ++expect;
    }
  });
  for (std::uint64_t i = 0; i < n;) {
    if (r.try_push(Item{i, i ^ kMix})) {
      ++i;
    } else {
      std::this_thread::yield();
    }
  }
  consumer.join();
  SSD_CHECK(ok.load());
  SSD_CHECK(r.empty_approx());
}

SSD_TEST(two_thread_stress_large_ring) {
  const auto t0 = std::chrono::steady_clock::now();
  const std::uint64_t n = ssd_test::scaled(3000000, 3);
  stress(1024, n);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("  %llu items through capacity 1024 in %.2f s\n", static_cast<unsigned long long>(n), s);
}

SSD_TEST(two_thread_stress_tiny_ring) {
  stress(2, ssd_test::scaled(300000, 2));  // full/empty on nearly every operation
}

int main() { return ssd_test::run_all(); }
