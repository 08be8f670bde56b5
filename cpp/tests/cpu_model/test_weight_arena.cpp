// test_weight_arena.cpp: WeightArena hands out aligned, zeroed, disjoint blocks that stay in place
// while it grows (small ones share a chunk, one larger than a chunk gets its own), and its memory
// outlives the arena's other owners through std::shared_ptr (PackedWeights built into one arena).
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "check.h"
#include "packed_linear.h"
#include "weight_arena.h"

using namespace ssd;

SSD_TEST(blocks_are_aligned_zeroed_disjoint_and_stable) {
  WeightArena arena;
  std::vector<std::pair<unsigned char*, size_t>> blocks;
  for (size_t bytes : {size_t{1}, size_t{100}, size_t{4096}, size_t{3} << 20, WeightArena::kChunkBytes + 5,
                       size_t{64}, size_t{1} << 20}) {
    auto* p = static_cast<unsigned char*>(arena.allocate(bytes));
    SSD_CHECK(p != nullptr);
    SSD_CHECK_EQ(reinterpret_cast<uintptr_t>(p) % 64, uintptr_t{0});
    for (size_t i = 0; i < bytes; i += 997) SSD_CHECK_EQ(p[i], 0);
    SSD_CHECK_EQ(p[bytes - 1], 0);
    std::memset(p, 0xA5, bytes);  // later allocations must not move or overwrite this
    blocks.emplace_back(p, bytes);
  }
  for (size_t a = 0; a < blocks.size(); ++a) {
    for (size_t b = a + 1; b < blocks.size(); ++b) {
      const bool disjoint = blocks[a].first + blocks[a].second <= blocks[b].first ||
                            blocks[b].first + blocks[b].second <= blocks[a].first;
      SSD_CHECK(disjoint);
    }
    SSD_CHECK_EQ(blocks[a].first[0], 0xA5);
    SSD_CHECK_EQ(blocks[a].first[blocks[a].second - 1], 0xA5);
  }
  SSD_CHECK(arena.bytes_used() >= WeightArena::kChunkBytes + (size_t{4} << 20));
}

SSD_TEST(matrices_keep_a_shared_arena_alive) {
  std::vector<float> w(24 * 16), x(16, 1.f), y(24);
  for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<float>(i % 7) - 3.f;
  auto arena = std::make_shared<WeightArena>();
  PackedWeights a(w.data(), 24, 16, arena), b(w.data(), 24, 16, arena);
  const size_t used = arena->bytes_used();
  SSD_CHECK(used >= 2 * 24 * 16 * sizeof(uint16_t));
  arena.reset();  // the matrices still own it
  b.apply(x.data(), 1, 16, nullptr, y.data(), 24);
  for (int64_t c = 0; c < 24; ++c) {
    float want = 0.f;
    for (int64_t i = 0; i < 16; ++i) want += w[c * 16 + i];
    SSD_CHECK_EQ(y[c], want);
  }
}

int main() { return ssd_test::run_all(); }
