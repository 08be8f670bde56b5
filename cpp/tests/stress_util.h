// stress_util.h: helpers for the concurrency stress tests: detect ThreadSanitizer builds (which run
// ~10x slower) so iteration counts can be scaled down, and a deadline-guarded join.
#pragma once
#include <cstddef>

#if defined(__SANITIZE_THREAD__)
#define SSD_TEST_UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SSD_TEST_UNDER_TSAN 1
#endif
#endif
#ifndef SSD_TEST_UNDER_TSAN
#define SSD_TEST_UNDER_TSAN 0
#endif

namespace ssd_test {

inline constexpr bool kUnderTsan = SSD_TEST_UNDER_TSAN != 0;

// n normally, n / divisor under ThreadSanitizer (at least 1).
inline std::size_t scaled(std::size_t n, std::size_t tsan_divisor = 10) {
  if (!kUnderTsan) return n;
  const std::size_t m = n / tsan_divisor;
  return m > 0 ? m : 1;
}

}  // namespace ssd_test
