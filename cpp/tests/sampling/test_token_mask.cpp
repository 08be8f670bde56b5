// test_token_mask.cpp: the token-mask math (cpp/core/token_mask.h) and CpuLogitsOps::apply_masks, the CPU
// reference of structured-output masking: disallowed logits become -inf, allowed ones keep their bits,
// only the listed rows change, bits past the vocabulary are ignored, and a masked row samples only
// allowed tokens (the sampling math treats -inf as probability 0).
#include <cmath>
#include <cstring>
#include <random>
#include <stdexcept>
#include <vector>

#include "check.h"
#include "cpu_logits_ops.h"
#include "token_mask.h"

using namespace ssd;

namespace {

std::vector<uint32_t> mask_of(int64_t vocab, bool (*allowed)(int64_t)) {
  std::vector<uint32_t> m(static_cast<size_t>(mask_words(vocab)), 0u);
  for (int64_t t = 0; t < vocab; ++t)
    if (allowed(t)) m[static_cast<size_t>(t / 32)] |= 1u << (t % 32);
  return m;
}

}  // namespace

SSD_TEST(mask_words_and_bits) {
  SSD_CHECK_EQ(mask_words(1), 1);
  SSD_CHECK_EQ(mask_words(32), 1);
  SSD_CHECK_EQ(mask_words(33), 2);
  std::vector<uint32_t> m = {0u, 0x80000000u};
  SSD_CHECK(!mask_allows(m.data(), 0));
  SSD_CHECK(mask_allows(m.data(), 63));
  SSD_CHECK(mask_allows_none(m.data(), 40));  // bit 63 lies past a vocabulary of 40
  SSD_CHECK(!mask_allows_none(m.data(), 64));
  std::vector<uint32_t> z = {0u};
  SSD_CHECK(mask_allows_none(z.data(), 32));
}

SSD_TEST(apply_masks_sets_minus_inf_where_disallowed_and_nothing_else) {
  const int64_t v = 70, rows = 4;
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  std::vector<float> data(static_cast<size_t>(rows * v));
  for (float& x : data) x = normal(rng);
  const std::vector<float> before = data;
  Logits l;
  l.data = data.data(), l.rows = rows, l.vocab = v;
  std::vector<uint32_t> a = mask_of(v, [](int64_t t) { return t % 3 == 1; });
  std::vector<uint32_t> b = mask_of(v, [](int64_t t) { return t == 69; });
  std::vector<uint32_t> masks = a;
  masks.insert(masks.end(), b.begin(), b.end());
  const int32_t words = mask_words(v);
  CpuLogitsOps().apply_masks(l, {2, 0}, masks.data(), words);  // row 2 gets mask a, row 0 mask b
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t t = 0; t < v; ++t) {
      const float got = data[static_cast<size_t>(r * v + t)], was = before[static_cast<size_t>(r * v + t)];
      const bool allowed = r == 2 ? t % 3 == 1 : r == 0 ? t == 69 : true;
      if (allowed) {
        SSD_CHECK(std::memcmp(&got, &was, sizeof(float)) == 0);
      } else {
        SSD_CHECK(std::isinf(got) && got < 0);
      }
    }
  }
}

SSD_TEST(apply_masks_rejects_bad_arguments) {
  std::vector<float> data(40, 0.0f);
  Logits l;
  l.data = data.data(), l.rows = 1, l.vocab = 40;
  std::vector<uint32_t> m(2, ~0u);
  bool threw = false;
  try {
    CpuLogitsOps().apply_masks(l, {0}, m.data(), 1);  // 40 tokens need 2 words
  } catch (const std::invalid_argument&) {
    threw = true;
  }
  SSD_CHECK(threw);
  threw = false;
  try {
    CpuLogitsOps().apply_masks(l, {1}, m.data(), 2);  // no row 1
  } catch (const std::invalid_argument&) {
    threw = true;
  }
  SSD_CHECK(threw);
  CpuLogitsOps().apply_masks(l, {}, nullptr, 2);  // nothing to do
}

SSD_TEST(a_masked_row_samples_only_allowed_tokens) {
  const int64_t v = 50;
  std::vector<float> data(static_cast<size_t>(v), 0.0f);
  data[7] = 9.0f;  // the unmasked argmax is disallowed below
  Logits l;
  l.data = data.data(), l.rows = 1, l.vocab = v;
  std::vector<uint32_t> m = mask_of(v, [](int64_t t) { return t % 5 == 2; });
  CpuLogitsOps().apply_masks(l, {0}, m.data(), mask_words(v));
  for (uint64_t seed = 0; seed < 64; ++seed) {
    DraftRowParams p;
    p.sampling.temperature = seed % 2 == 0 ? 1.0f : 0.0f;
    p.seed = seed;
    DraftBatch batch;
    batch.rows = 1, batch.vocab = static_cast<int32_t>(v), batch.logits = l.data, batch.params = &p;
    int64_t token = -1;
    CpuLogitsOps().sample_draft(l, batch, &token);
    SSD_CHECK(token >= 0 && token % 5 == 2);
  }
}

int main() { return ssd_test::run_all(); }
