// test_cpu_linear.cpp: the small-batch CPU matrix kernel against its double-precision reference, over
// row counts that hit every tile shape, K with and without a tail, strides, bias and bfloat16 weights;
// its batch invariance (a row's output is bitwise the same whatever else shares the call); its errors.
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
  std::vector<uint16_t> w_bf16;

  Problem(int64_t m_, int64_t n_, int64_t k_, uint32_t seed, int64_t pad = 0)
      : m(m_), n(n_), k(k_), x_stride(k_ + pad), w_stride(k_ + pad), y_stride(n_ + pad) {
    std::mt19937 gen(seed);
    std::normal_distribution<float> normal;
    x.resize(static_cast<size_t>(m * x_stride));
    w.resize(static_cast<size_t>(n * w_stride));
    bias.resize(static_cast<size_t>(n));
    for (float& v : x) v = normal(gen);
    for (float& v : bias) v = normal(gen);
    w_bf16.resize(w.size());
    for (size_t i = 0; i < w.size(); ++i) {  // weights exactly representable in bfloat16
      uint32_t u;
      const float f = normal(gen);
      std::memcpy(&u, &f, sizeof u);
      u &= 0xFFFF0000u;
      std::memcpy(&w[i], &u, sizeof u);
      w_bf16[i] = static_cast<uint16_t>(u >> 16);
    }
  }
  CpuLinearArgs args(std::vector<float>& out, bool bf16, bool with_bias, int64_t rows, int64_t first_row = 0) {
    out.assign(static_cast<size_t>(rows * y_stride), -7.f);
    CpuLinearArgs a;
    a.x = x.data() + first_row * x_stride, a.x_stride = x_stride, a.w_stride = w_stride;
    a.w = bf16 ? nullptr : w.data(), a.w_bf16 = bf16 ? w_bf16.data() : nullptr;
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
      for (int variant = 0; variant < 4; ++variant) {
        const bool bf16 = variant & 1, with_bias = variant & 2;
        std::vector<float> got, want;
        cpu_linear(p.args(got, bf16, with_bias, m));
        cpu_linear_reference(p.args(want, bf16, with_bias, m));
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

SSD_TEST(batch_invariant_and_bf16_equals_float32) {
  Problem p(13, 70, 200, 7);
  std::vector<float> all, all_bf16;
  cpu_linear(p.args(all, false, true, 13));
  cpu_linear(p.args(all_bf16, true, true, 13));
  SSD_CHECK(std::memcmp(all.data(), all_bf16.data(), all.size() * sizeof(float)) == 0);
  for (int64_t rows : {1, 2, 3, 5, 6})
    for (int64_t first = 0; first + rows <= 13; first += 4) {
      std::vector<float> part;
      cpu_linear(p.args(part, false, true, rows, first));
      SSD_CHECK(std::memcmp(part.data(), all.data() + first * p.y_stride, part.size() * sizeof(float)) == 0);
    }
}

SSD_TEST(bf16_exact_detects_inexact_values) {
  std::vector<float> exact = {1.f, -2.f, 0.5f, 0.f};
  std::vector<uint16_t> bits(4);
  SSD_CHECK(bf16_exact(exact.data(), 4, bits.data()));
  SSD_CHECK_EQ(bits[0], 0x3F80);
  SSD_CHECK_EQ(bits[1], 0xC000);
  std::vector<float> inexact = {1.f, 1.f + 1.f / 1024.f};
  SSD_CHECK(!bf16_exact(inexact.data(), 2, nullptr));
}

SSD_TEST(rejects_bad_arguments) {
  Problem p(2, 4, 8, 1);
  std::vector<float> out;
  CpuLinearArgs a = p.args(out, false, false, 2);
  a.w_bf16 = p.w_bf16.data();  // both weight forms
  SSD_CHECK_THROWS(cpu_linear(a));
  a = p.args(out, false, false, 2);
  a.x_stride = 3;
  SSD_CHECK_THROWS(cpu_linear(a));
  a = p.args(out, false, false, 2);
  a.k = -1;
  SSD_CHECK_THROWS(cpu_linear(a));
  a = p.args(out, false, false, 0);  // nothing to do
  cpu_linear(a);
}

int main() { return ssd_test::run_all(); }
