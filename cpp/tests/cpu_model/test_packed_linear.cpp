// test_packed_linear.cpp: PackedWeights against a double-precision product over row counts that hit
// every tile shape (and several row chunks), output counts that are not a multiple of the 8-row block,
// float32 and bfloat16-exact weights, bias and strides; batch invariance (bitwise); the exact fma order
// (the same bits on every path); errors.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "check.h"
#include "packed_linear.h"

using namespace ssd;

namespace {

std::vector<float> random_matrix(int64_t rows, int64_t cols, uint32_t seed, bool bf16_exact) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> normal;
  std::vector<float> w(static_cast<size_t>(rows * cols));
  for (float& v : w) {
    v = normal(gen);
    if (bf16_exact) {
      uint32_t u;
      std::memcpy(&u, &v, sizeof u);
      u &= 0xFFFF0000u;
      std::memcpy(&v, &u, sizeof u);
    }
  }
  return w;
}

}  // namespace

SSD_TEST(matches_double_product_for_every_tile_shape) {
  for (bool compact : {false, true}) {
    for (int64_t n : {5, 8, 61, 200}) {
      const int64_t k = 37 + n % 3 * 64;
      const std::vector<float> w = random_matrix(n, k, static_cast<uint32_t>(n), compact);
      const std::vector<float> bias = random_matrix(1, n, 99, false);
      const PackedWeights packed(w.data(), n, k);
      SSD_CHECK_EQ(packed.bf16(), compact);
      for (int64_t m : {1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 17}) {
        const std::vector<float> x = random_matrix(m, k + 3, static_cast<uint32_t>(m + 7), false);
        const int64_t outputs = n > 8 ? n - 3 : n;  // a limited output count, not a block multiple
        std::vector<float> y(static_cast<size_t>(m * (n + 1)), -7.f);
        packed.apply(x.data(), m, k + 3, bias.data(), y.data(), n + 1, outputs);
        for (int64_t r = 0; r < m; ++r)
          for (int64_t c = 0; c <= n; ++c) {
            const float got = y[r * (n + 1) + c];
            if (c >= outputs) {
              SSD_CHECK_EQ(got, -7.f);  // untouched
              continue;
            }
            double want = bias[c];
            for (int64_t i = 0; i < k; ++i) want += double(w[c * k + i]) * x[r * (k + 3) + i];
            SSD_CHECK_NEAR(got, want, 1e-4 * (1 + std::sqrt(double(k))));
          }
      }
    }
  }
}

SSD_TEST(rows_are_batch_invariant_and_bf16_equals_float32) {
  const int64_t n = 77, k = 96, m = 19;
  const std::vector<float> w = random_matrix(n, k, 3, true), x = random_matrix(m, k, 4, false);
  const PackedWeights packed(w.data(), n, k);
  std::vector<float> all(m * n);
  packed.apply(x.data(), m, k, nullptr, all.data(), n);
  for (int64_t rows : {1, 2, 3, 4, 5, 6, 7, 8, 9, 11})
    for (int64_t first = 0; first + rows <= m; first += 3) {
      std::vector<float> part(rows * n);
      packed.apply(x.data() + first * k, rows, k, nullptr, part.data(), n);
      SSD_CHECK(std::memcmp(part.data(), all.data() + first * n, part.size() * sizeof(float)) == 0);
    }
  std::vector<float> w_inexact = w;  // one value off the bf16 grid forces the float32 copy
  w_inexact[5 * k] = std::nextafter(w_inexact[5 * k], 1e9f);
  const PackedWeights f32(w_inexact.data(), n, k);
  SSD_CHECK(!f32.bf16());
  std::vector<float> y32(m * n);
  f32.apply(x.data(), m, k, nullptr, y32.data(), n);
  for (int64_t r = 0; r < m; ++r)  // rows of W other than row 5 are the same values: same bits
    for (int64_t c = 0; c < n; ++c)
      if (c != 5) SSD_CHECK_EQ(y32[r * n + c], all[r * n + c]);
}

// The documented order, whatever the path (portable, AVX2, AVX-512: CTest runs this binary under each):
// a float fma chain over i = 0..k-1 from 0, then + bias. So every path gives the same bits.
SSD_TEST(every_output_is_the_documented_fma_chain) {
  for (bool compact : {false, true}) {
    const int64_t n = 45, k = 67;
    const std::vector<float> w = random_matrix(n, k, 11, compact), bias = random_matrix(1, n, 12, false);
    const PackedWeights packed(w.data(), n, k);
    for (int64_t m : {1, 3, 5, 6, 8, 12, 21}) {
      const std::vector<float> x = random_matrix(m, k, static_cast<uint32_t>(m), false);
      std::vector<float> y(m * n);
      packed.apply(x.data(), m, k, bias.data(), y.data(), n);
      for (int64_t r = 0; r < m; ++r)
        for (int64_t c = 0; c < n; ++c) {
          float s = 0.f;
          for (int64_t i = 0; i < k; ++i) s = std::fma(w[c * k + i], x[r * k + i], s);
          SSD_CHECK_EQ(y[r * n + c], s + bias[c]);
        }
    }
  }
}

SSD_TEST(rejects_bad_arguments) {
  const std::vector<float> w = random_matrix(4, 8, 1, false), x(16, 1.f);
  std::vector<float> y(8);
  const PackedWeights packed(w.data(), 4, 8);
  SSD_CHECK_THROWS(packed.apply(x.data(), 2, 7, nullptr, y.data(), 4));     // x stride < k
  SSD_CHECK_THROWS(packed.apply(x.data(), 1, 8, nullptr, y.data(), 4, 5));  // more outputs than rows
  SSD_CHECK_THROWS(packed.apply(nullptr, 1, 8, nullptr, y.data(), 4));
  SSD_CHECK_THROWS(PackedWeights(nullptr, 4, 8));
  packed.apply(x.data(), 0, 8, nullptr, y.data(), 4);  // no rows: nothing to do
}

// Any split of the output blocks (as ThreadTeam parts compute them) gives the bits of one call.
SSD_TEST(block_ranges_give_the_bits_of_one_call) {
  for (bool bf16 : {false, true}) {
    for (int64_t n : {8, 61, 200, 577}) {
      const int64_t k = 67, m = 7;
      const std::vector<float> w = random_matrix(n, k, 11 + static_cast<uint32_t>(n), bf16);
      const std::vector<float> x = random_matrix(m, k, 5, false), bias = random_matrix(1, n, 6, false);
      const PackedWeights packed(w.data(), n, k);
      std::vector<float> whole(static_cast<size_t>(m * n)), parts(whole.size(), -1.f);
      packed.apply(x.data(), m, k, bias.data(), whole.data(), n);
      const int64_t blocks = packed.blocks();
      SSD_CHECK_EQ(blocks, (n + 7) / 8);
      for (int64_t cut : {int64_t{1}, blocks / 3, blocks - 1}) {  // two or three ranges
        std::fill(parts.begin(), parts.end(), -1.f);
        const int64_t cuts[] = {0, std::min(cut, blocks), std::min(blocks, cut + 2), blocks};
        for (int c = 0; c < 3; ++c)
          packed.apply_blocks(x.data(), m, k, bias.data(), parts.data(), n, -1, cuts[c], cuts[c + 1]);
        SSD_CHECK(std::memcmp(whole.data(), parts.data(), sizeof(float) * whole.size()) == 0);
      }
    }
  }
  const std::vector<float> w = random_matrix(16, 4, 1, false), x(4, 1.f);
  std::vector<float> y(16);
  const PackedWeights packed(w.data(), 16, 4);
  SSD_CHECK_THROWS(packed.apply_blocks(x.data(), 1, 4, nullptr, y.data(), 16, -1, 0, 3));  // 2 blocks
  SSD_CHECK_THROWS(packed.apply_blocks(x.data(), 1, 4, nullptr, y.data(), 16, -1, 2, 1));
}

int main() { return ssd_test::run_all(); }
