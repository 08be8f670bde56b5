// check.h: a minimal unit-test harness for the C++ tests (no third-party test framework).
//
// Usage: SSD_TEST(name) { SSD_CHECK(cond); SSD_CHECK_EQ(a, b); }  and  int main() { return ssd_test::run_all(); }
// Every test runs in registration order; a failed check prints file:line and the expression and marks
// the test failed but lets the remaining tests run. The exit code is the number of failed tests (capped).
#pragma once
#include <cstdio>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

namespace ssd_test {

struct Case {
  const char* name;
  std::function<void()> fn;
};

inline std::vector<Case>& registry() {
  static std::vector<Case> cases;
  return cases;
}
inline bool& current_failed() {
  static bool failed = false;
  return failed;
}
struct Registrar {
  Registrar(const char* name, std::function<void()> fn) { registry().push_back({name, std::move(fn)}); }
};

inline void fail(const char* file, int line, const std::string& what) {
  std::fprintf(stderr, "  FAILED %s:%d: %s\n", file, line, what.c_str());
  current_failed() = true;
}

inline int run_all() {
  int failed = 0;
  for (auto& c : registry()) {
    current_failed() = false;
    try {
      c.fn();
    } catch (const std::exception& e) {
      fail(__FILE__, __LINE__, std::string("uncaught exception: ") + e.what());
    }
    std::printf("[%s] %s\n", current_failed() ? "FAIL" : " ok ", c.name);
    failed += current_failed() ? 1 : 0;
  }
  std::printf("%zu passed, %d failed\n", registry().size() - failed, failed);
  return failed > 100 ? 100 : failed;
}

}  // namespace ssd_test

#define SSD_TEST_CAT2(a, b) a##b
#define SSD_TEST_CAT(a, b) SSD_TEST_CAT2(a, b)
#define SSD_TEST(name)                                                              \
  static void name();                                                               \
  static ssd_test::Registrar SSD_TEST_CAT(reg_, name)(#name, name);                 \
  static void name()

#define SSD_CHECK(cond)                                                             \
  do {                                                                              \
    if (!(cond)) ssd_test::fail(__FILE__, __LINE__, #cond);                         \
  } while (0)

#define SSD_CHECK_EQ(a, b)                                                          \
  do {                                                                              \
    auto va_ = (a);                                                                 \
    auto vb_ = (b);                                                                 \
    if (!(va_ == vb_)) {                                                            \
      std::ostringstream os_;                                                       \
      os_ << #a << " == " << #b << " (" << va_ << " vs " << vb_ << ")";             \
      ssd_test::fail(__FILE__, __LINE__, os_.str());                                \
    }                                                                               \
  } while (0)

#define SSD_CHECK_NEAR(a, b, tol)                                                   \
  do {                                                                              \
    double va_ = (a), vb_ = (b);                                                    \
    if (!(va_ - vb_ <= (tol) && vb_ - va_ <= (tol))) {                              \
      std::ostringstream os_;                                                       \
      os_ << #a << " ~= " << #b << " (" << va_ << " vs " << vb_ << ", tol " << (tol) << ")"; \
      ssd_test::fail(__FILE__, __LINE__, os_.str());                                \
    }                                                                               \
  } while (0)

#define SSD_CHECK_THROWS(expr)                                                      \
  do {                                                                              \
    bool threw_ = false;                                                            \
    try {                                                                           \
      (void)(expr);                                                                 \
    } catch (...) {                                                                 \
      threw_ = true;                                                                \
    }                                                                               \
    if (!threw_) ssd_test::fail(__FILE__, __LINE__, "expected exception: " #expr);  \
  } while (0)
