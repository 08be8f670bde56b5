// test_cpu_attention.cpp: which slots a row sees (causal, attend_len + extras + own slot, deduplicated),
// and the attention output against a direct double-precision softmax over exactly those slots, with
// grouped-query heads, two lanes, tree-style extra slots and a sliding window on logical positions.
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "check.h"
#include "cpu_attention.h"

using namespace ssd;

SSD_TEST(visible_keys_follow_the_row_contract) {
  const int32_t slots[] = {4, 40, 41}, attend[] = {0, 10, 10}, extra[] = {-1, -1, 40, -1, 40, 3};
  ForwardBatch causal;
  causal.rows = 3, causal.slots = slots;
  SSD_CHECK_EQ(visible_keys(causal, 0).prefix, 5);
  SSD_CHECK(visible_keys(causal, 0).more.empty());
  ForwardBatch tree = causal;
  tree.attend_len = attend, tree.extra_slots = extra, tree.extra_width = 2;
  RowKeys r0 = visible_keys(tree, 0);  // attend_len 0: just its own slot
  SSD_CHECK_EQ(r0.prefix, 0);
  SSD_CHECK(r0.more == std::vector<int64_t>{4});
  RowKeys r1 = visible_keys(tree, 1);  // extra 40 is its own slot: listed once
  SSD_CHECK(r1.more == std::vector<int64_t>{40});
  RowKeys r2 = visible_keys(tree, 2);  // extra 3 is inside the prefix
  SSD_CHECK_EQ(r2.prefix, 10);
  SSD_CHECK((r2.more == std::vector<int64_t>{40, 41}));
}

SSD_TEST(attention_matches_direct_softmax) {
  const int64_t layers = 2, lanes = 2, kvh = 2, slots = 48, dim = 16, heads = 4, layer = 1;
  std::mt19937 gen(3);
  std::normal_distribution<float> normal;
  std::vector<float> cache(static_cast<size_t>(layers * 2 * lanes * kvh * slots * dim));
  for (float& v : cache) v = normal(gen);
  std::vector<int64_t> slot_pos(lanes * slots);
  for (int64_t l = 0; l < lanes; ++l)
    for (int64_t s = 0; s < slots; ++s) slot_pos[l * slots + s] = s < 32 ? s : 20 + (s - 32);  // scratch
  CpuKvCache kv{cache.data(), layers, lanes, kvh, slots, dim, slot_pos.data()};
  // rows: a causal-by-slot verification row in lane 0, and tree rows in lane 1 at scratch slots
  const int32_t tok[] = {0, 0, 0}, pos[] = {12, 21, 22}, lane[] = {0, 1, 1}, slot[] = {12, 33, 34};
  const int32_t attend[] = {13, 20, 20}, extra[] = {-1, -1, 32, -1, 32, 33};
  ForwardBatch rows;
  rows.rows = 3, rows.tokens = tok, rows.positions = pos, rows.lanes = lane, rows.slots = slot;
  rows.attend_len = attend, rows.extra_slots = extra, rows.extra_width = 2;
  std::vector<float> q(3 * heads * dim);
  for (float& v : q) v = normal(gen);
  for (int64_t window : {0, 6}) {
    std::vector<float> out(q.size());
    cpu_attention(rows, kv, layer, heads, window, q.data(), heads * dim, out.data());
    for (int64_t r = 0; r < 3; ++r) {
      const RowKeys rk = visible_keys(rows, r);
      std::vector<int64_t> keys;
      for (int64_t s = 0; s < rk.prefix; ++s) keys.push_back(s);
      keys.insert(keys.end(), rk.more.begin(), rk.more.end());
      for (int64_t h = 0; h < heads; ++h) {
        const int64_t g = h / (heads / kvh);
        const float* K = kv.keys(layer, lane[r], g);
        const float* V = kv.values(layer, lane[r], g);
        std::vector<double> p;
        double top = -1e300, sum = 0;
        for (int64_t s : keys) {
          double d = 0;
          for (int64_t i = 0; i < dim; ++i) d += double(q[(r * heads + h) * dim + i]) * K[s * dim + i];
          d /= std::sqrt(double(dim));
          if (window && pos[r] - slot_pos[lane[r] * slots + s] >= window) d = -1e300;
          p.push_back(d);
          top = std::max(top, d);
        }
        for (double& v : p) sum += (v = v <= -1e299 ? 0 : std::exp(v - top));
        for (int64_t i = 0; i < dim; ++i) {
          double want = 0;
          for (size_t j = 0; j < keys.size(); ++j) want += p[j] / sum * V[keys[j] * dim + i];
          SSD_CHECK_NEAR(out[(r * heads + h) * dim + i], want, 1e-5);
        }
      }
    }
  }
}

int main() { return ssd_test::run_all(); }
