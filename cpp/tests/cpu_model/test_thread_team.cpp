// test_thread_team.cpp: ThreadTeam runs every part exactly once per run, on distinct threads, returns
// only when all parts are done (many runs back to back, with parking in between), rethrows a part's
// exception and stays usable, and split() covers a range in contiguous, balanced pieces.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <thread>
#include <vector>

#include "check.h"
#include "thread_team.h"

using namespace ssd;

SSD_TEST(every_part_runs_once_per_run) {
  for (int threads : {1, 2, 3, 5}) {
    ThreadTeam team(threads, {}, /*spin_ns=*/threads == 3 ? 0 : 200000);  // 0: park after every run
    SSD_CHECK_EQ(team.size(), threads);
    std::vector<int> counts(threads, 0);  // each part writes only its own slot
    for (int run = 0; run < 2000; ++run) {
      team.run([&](int part) { counts[part] += 1; });
      for (int p = 0; p < threads; ++p) SSD_CHECK_EQ(counts[p], run + 1);  // all done before run() returns
    }
  }
}

SSD_TEST(parts_run_on_distinct_threads) {
  ThreadTeam team(4);
  std::vector<std::thread::id> ids(4);
  team.run([&](int part) { ids[part] = std::this_thread::get_id(); });
  SSD_CHECK(ids[0] == std::this_thread::get_id());
  for (int a = 0; a < 4; ++a)
    for (int b = a + 1; b < 4; ++b) SSD_CHECK(ids[a] != ids[b]);
}

SSD_TEST(an_exception_reaches_the_caller_and_the_team_stays_usable) {
  ThreadTeam team(3);
  for (int thrower : {0, 2}) {
    bool caught = false;
    try {
      team.run([&](int part) {
        if (part == thrower) throw std::runtime_error("part failed");
      });
    } catch (const std::runtime_error&) {
      caught = true;
    }
    SSD_CHECK(caught);
    std::atomic<int> done{0};
    team.run([&](int) { done.fetch_add(1); });
    SSD_CHECK_EQ(done.load(), 3);
  }
  SSD_CHECK_THROWS(ThreadTeam(0));
}

SSD_TEST(split_is_contiguous_and_balanced) {
  for (int64_t count : {0, 1, 7, 8, 100}) {
    for (int parts : {1, 2, 3, 8}) {
      int64_t next = 0;
      for (int p = 0; p < parts; ++p) {
        int64_t b, e;
        ThreadTeam::split(count, parts, p, &b, &e);
        SSD_CHECK_EQ(b, next);
        SSD_CHECK(e - b == count / parts || e - b == count / parts + 1);
        next = e;
      }
      SSD_CHECK_EQ(next, count);
    }
  }
}

int main() { return ssd_test::run_all(); }
