// test_cpu_linear.cpp: the row-major CPU product against its double-precision reference, over row
// counts that hit every tile shape, K with and without a tail, strides and bias; its batch invariance
// (a row's output is bitwise the same whatever else shares the call); its errors.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <stdexcept>
#include <vector>

#include "check.h"
#include "cpu_linear.h"

using namespace ssd;

namespace {

struct Problem {
  int64_t m, n, k, x_stride, w_stride, y_stride;
  std::vector<float> x, w, bias, y;

  Problem(int64_t m_, int64_t n_, int64_t k_, uint32_t seed, int64_t pad = 0)
      : m(m_), n(n_), k(k_), x_stride(k_ + pad), w_stride(k_ + pad), y_stride(n_ + pad) {
    std::mt19937 gen(seed);
    std::normal_distribution<float> normal;
    x.resize(static_cast<size_t>(m * x_stride));
    w.resize(static_cast<size_t>(n * w_stride));
    bias.resize(static_cast<size_t>(n));
    for (float& v : x) v = normal(gen);
    for (float& v : w) v = normal(gen);
    for (float& v : bias) v = normal(gen);
  }
  CpuLinearArgs args(std::vector<float>& out, bool with_bias, int64_t rows, int64_t first_row = 0) {
    out.assign(static_cast<size_t>(rows * y_stride), -7.f);
    CpuLinearArgs a;
    a.x = x.data() + first_row * x_stride, a.x_stride = x_stride, a.w_stride = w_stride;
    a.w = w.data();
    a.bias = with_bias ? bias.data() : nullptr, a.y = out.data(), a.y_stride = y_stride;
    a.m = rows, a.n = n, a.k = k;
    return a;
  }
};

}  // namespace

SSD_TEST(matches_reference_for_every_tile_shape) {
  for (int64_t m : {1, 2, 3, 4, 5, 6, 7, 12, 13, 17}) {
    for (int64_t k : {8, 37, 128, 384}) {
      Problem p(m, 53, k, static_cast<uint32_t>(m * 1000 + k), m % 2);
      for (bool with_bias : {false, true}) {
        std::vector<float> got, want;
        cpu_linear(p.args(got, with_bias, m));
        cpu_linear_reference(p.args(want, with_bias, m));
        for (int64_t r = 0; r < m; ++r)
          for (int64_t c = 0; c < p.n; ++c) {
            const float g = got[r * p.y_stride + c], e = want[r * p.y_stride + c];
            SSD_CHECK(std::fabs(g - e) <= 1e-4f * (1.f + std::sqrt(static_cast<float>(k))));
          }
        for (int64_t r = 0; r < m; ++r)  // padding columns untouched
          for (int64_t c = p.n; c < p.y_stride; ++c) SSD_CHECK_EQ(got[r * p.y_stride + c], -7.f);
      }
    }
  }
}

SSD_TEST(batch_invariant) {
  Problem p(13, 70, 200, 7);
  std::vector<float> all;
  cpu_linear(p.args(all, true, 13));
  for (int64_t rows : {1, 2, 3, 5, 6})
    for (int64_t first = 0; first + rows <= 13; first += 4) {
      std::vector<float> part;
      cpu_linear(p.args(part, true, rows, first));
      SSD_CHECK(std::memcmp(part.data(), all.data() + first * p.y_stride, part.size() * sizeof(float)) == 0);
    }
}

SSD_TEST(rejects_bad_arguments) {
  Problem p(2, 4, 8, 1);
  std::vector<float> out;
  CpuLinearArgs a = p.args(out, false, 2);
  a.w = nullptr;
  SSD_CHECK_THROWS(cpu_linear(a));
  a = p.args(out, false, 2);
  a.x_stride = 3;
  SSD_CHECK_THROWS(cpu_linear(a));
  a = p.args(out, false, 2);
  a.k = -1;
  SSD_CHECK_THROWS(cpu_linear(a));
  a = p.args(out, false, 0);  // nothing to do
  cpu_linear(a);
}

int main() { return ssd_test::run_all(); }
