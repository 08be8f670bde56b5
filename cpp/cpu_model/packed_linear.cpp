// packed_linear.cpp: see packed_linear.h.
#include "packed_linear.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "cpu_linear.h"

#ifdef SSD_X86_KERNELS
#include <immintrin.h>
#endif

namespace ssd {
namespace {

constexpr int64_t kBlock = 8;          // output rows of W per block (one AVX2 vector)
constexpr int64_t kPanelBlocks = 24;   // blocks kept in cache while every row chunk passes (NV divides it)
constexpr int64_t kPrefetchBytes = 16 << 10;  // first pass: prefetch this far ahead in the stream

struct Job {
  const float* x;
  int64_t x_stride;
  const float* bias;
  float* y;
  int64_t y_stride, m, n, k;
  int64_t b_begin, b_end;  // the blocks of outputs to compute
};

// Index of W[c][i] in the packed array. Block c / 8 holds its 8 rows k-major; bfloat16 blocks store
// the columns in pairs p, p + 1 (p even) as [p: rows 0-3, p + 1: rows 0-3, p: rows 4-7, p + 1: rows
// 4-7], so that one 256-bit load and an unpack against zero (which moves each value to the high half of
// a 32-bit lane: exactly its float32) gives column p, and the other unpack column p + 1. An odd last
// column is stored plainly.
int64_t packed_at(int64_t c, int64_t i, int64_t k, bool paired) {
  const int64_t base = (c / kBlock) * k * kBlock, row = c % kBlock;
  if (!paired || i >= (k & ~int64_t{1})) return base + i * kBlock + row;
  return base + (i & ~int64_t{1}) * kBlock + (row / 4) * 8 + (i & 1) * 4 + row % 4;
}

inline float widen(float v) { return v; }
inline float widen(uint16_t bits) {
  const uint32_t u = static_cast<uint32_t>(bits) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// True when every value is exactly a bfloat16 (its low 16 bits are zero).
bool bf16_exact(const float* w, int64_t count) {
  for (int64_t i = 0; i < count; ++i) {
    uint32_t u;
    std::memcpy(&u, w + i, sizeof u);
    if (u & 0xFFFFu) return false;
  }
  return true;
}

template <class W>
void apply_portable(const W* packed, const Job& j) {
  for (int64_t r = 0; r < j.m; ++r)
    for (int64_t c = j.b_begin * kBlock; c < std::min(j.n, j.b_end * kBlock); ++c) {
      const float* x = j.x + r * j.x_stride;
      float s = 0.f;
      for (int64_t i = 0; i < j.k; ++i)
        s = std::fma(widen(packed[packed_at(c, i, j.k, std::is_same_v<W, uint16_t>)]), x[i], s);
      j.y[r * j.y_stride + c] = j.bias ? s + j.bias[c] : s;
    }
}

#ifdef SSD_X86_KERNELS
// The tile code below is written once with AVX2 intrinsics and force-inlined into two entry points:
// apply_avx2 (16 vector registers) and apply_avx512 (AVX-512VL/BW: the same 256-bit operations, EVEX
// encoded, with 32 registers, hence larger tiles). Every output is the same fma chain either way.
#define SSD_TILE __attribute__((always_inline, target("avx2,fma"))) inline
SSD_TILE __m256 load8(const float* w) { return _mm256_loadu_ps(w); }
SSD_TILE __m256 load8(const uint16_t* w) {
  const __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w)));
  return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
}

// Adds the bias and stores the 8 outputs of block `b` for row r (fewer in the last, padded block).
SSD_TILE void store_block(const Job& j, __m256 acc, int64_t r, int64_t b) {
  const int64_t c = b * kBlock, valid = std::min(kBlock, j.n - c);
  float* y = j.y + r * j.y_stride + c;
  if (valid == kBlock) {
    _mm256_storeu_ps(y, j.bias ? _mm256_add_ps(acc, _mm256_loadu_ps(j.bias + c)) : acc);
    return;
  }
  alignas(32) float out[kBlock];
  _mm256_store_ps(out, acc);
  for (int64_t q = 0; q < valid; ++q) y[q] = j.bias ? out[q] + j.bias[c + q] : out[q];
}

// acc[i][v] += w[v] * x[i][p] for the R rows: one broadcast activation per row.
template <int R, int NV>
SSD_TILE void fma_rows(__m256 (&acc)[R][NV], const __m256 (&w)[NV], const float* const (&x)[R], int64_t p) {
  _Pragma("GCC unroll 16") for (int i = 0; i < R; ++i) {
    const __m256 xv = _mm256_broadcast_ss(x[i] + p);
    _Pragma("GCC unroll 16") for (int v = 0; v < NV; ++v) acc[i][v] = _mm256_fmadd_ps(w[v], xv, acc[i][v]);
  }
}

// Rows [r, r + R) x blocks [b, b + NV): R * NV accumulators, one broadcast activation per row and step.
// Shapes keep R * NV + NV + 2 within the vector registers (16 with AVX2, 32 with AVX-512VL; the 2 are the
// broadcast and the zero of the bf16 unpack): a spilled accumulator costs a store per step and halves
// the throughput.
template <int R, int NV, bool kPrefetch, class W>
SSD_TILE void tile(const W* packed, const Job& j, int64_t r, int64_t b) {
  __m256 acc[R][NV];
  _Pragma("GCC unroll 16") for (int i = 0; i < R; ++i)
    _Pragma("GCC unroll 16") for (int v = 0; v < NV; ++v) acc[i][v] = _mm256_setzero_ps();
  const W* blk[NV];
  _Pragma("GCC unroll 16") for (int v = 0; v < NV; ++v) blk[v] = packed + (b + v) * j.k * kBlock;
  const float* x[R];
  _Pragma("GCC unroll 16") for (int i = 0; i < R; ++i) x[i] = j.x + (r + i) * j.x_stride;
  constexpr int64_t kAhead = kPrefetchBytes / sizeof(W);
  const int64_t k = j.k;  // a local bound: with j.k GCC keeps every accumulator in memory
  int64_t p = 0;
  __m256 w[NV];
  if constexpr (std::is_same_v<W, uint16_t>) {  // column pairs: one load, two unpacks (see packed_at)
    const __m256i zero = _mm256_setzero_si256();
    for (; p + 2 <= k; p += 2) {
      if (kPrefetch)  // a compile-time branch: a run-time one makes GCC keep acc in memory
        _Pragma("GCC unroll 16") for (int v = 0; v < NV; ++v) _mm_prefetch(reinterpret_cast<const char*>(blk[v] + p * kBlock + kAhead), _MM_HINT_T0);
      _Pragma("GCC unroll 16") for (int v = 0; v < NV; ++v) w[v] = _mm256_castsi256_ps(_mm256_unpacklo_epi16(zero, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk[v] + p * kBlock))));
      fma_rows<R, NV>(acc, w, x, p);
      _Pragma("GCC unroll 16") for (int v = 0; v < NV; ++v) w[v] = _mm256_castsi256_ps(_mm256_unpackhi_epi16(zero, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk[v] + p * kBlock))));
      fma_rows<R, NV>(acc, w, x, p + 1);
    }
  }
  for (; p < k; ++p) {
    if (kPrefetch)
      _Pragma("GCC unroll 16") for (int v = 0; v < NV; ++v) _mm_prefetch(reinterpret_cast<const char*>(blk[v] + p * kBlock + kAhead), _MM_HINT_T0);
    _Pragma("GCC unroll 16") for (int v = 0; v < NV; ++v) w[v] = load8(blk[v] + p * kBlock);
    fma_rows<R, NV>(acc, w, x, p);
  }
  _Pragma("GCC unroll 16") for (int i = 0; i < R; ++i)
    _Pragma("GCC unroll 16") for (int v = 0; v < NV; ++v) store_block(j, acc[i][v], r + i, b + v);
}

template <int R, int NV, class W>
SSD_TILE void row_chunk(const W* packed, const Job& j, int64_t r, int64_t b0, int64_t b1) {
  int64_t b = b0;
  if (r == 0) {  // the first chunk streams the weights from memory
    for (; b + NV <= b1; b += NV) tile<R, NV, true, W>(packed, j, r, b);
    for (; b < b1; ++b) tile<R, 1, true, W>(packed, j, r, b);
  } else {
    for (; b + NV <= b1; b += NV) tile<R, NV, false, W>(packed, j, r, b);
    for (; b < b1; ++b) tile<R, 1, false, W>(packed, j, r, b);
  }
}

// Accumulator blocks per tile for R rows with `regs` vector registers: the most that keeps every register
// in place (see tile), among divisors of kPanelBlocks so that panels split into whole tiles. With 32
// registers up to 5 rows keep the 16-register shapes: wider tiles measured slower there (more weight
// streams at once while a few rows' work is bound by memory).
template <class W>
constexpr int blocks_for(int rows, int regs) {
  constexpr bool bf16 = std::is_same_v<W, uint16_t>;  // one register fewer: the unpack's zero
  if (regs < 32) return rows == 1 ? 6 : rows == 2 ? 4 : rows == 3 ? 3 : rows == 4 ? (bf16 ? 2 : 3) : 2;
  return rows <= 5 ? blocks_for<W>(rows, 16) : 3;  // 6-8 rows (max_chunk_rows): 8 x 3 + 3 + 2 <= 32
}

// The largest row chunk: 6 rows with 16 registers (5 for bf16, where 6 x 2 accumulators would spill),
// 8 with 32 (8 x 3 accumulators; measured: 9-12 rows x 2 blocks run slower than two chunks).
template <class W>
constexpr int max_chunk_rows(int regs) {
  return regs >= 32 ? 8 : std::is_same_v<W, uint16_t> ? 5 : 6;
}

// Rows per chunk: chunks of at most max_chunk_rows, split evenly: 7 rows with 16 registers go as 4 + 3,
// not 6 + 1, whose 1-row chunk re-reads a panel for little work.
template <class W, int Regs>
int64_t chunk_rows(int64_t left) {
  constexpr int64_t kMax = max_chunk_rows<W>(Regs);
  const int64_t chunks = (left + kMax - 1) / kMax;
  return (left + chunks - 1) / chunks;
}

// row_chunk for a run-time row count `rows` (1..max_chunk_rows): R counts up to it at compile time.
template <class W, int Regs, int R = 1>
SSD_TILE void chunk_of(const W* packed, const Job& j, int64_t rows, int64_t r, int64_t b0, int64_t b1) {
  if constexpr (R < max_chunk_rows<W>(Regs)) {
    if (rows > R) return chunk_of<W, Regs, R + 1>(packed, j, rows, r, b0, b1);
  }
  row_chunk<R, blocks_for<W>(R, Regs), W>(packed, j, r, b0, b1);
}

// Panels of blocks stay in L1/L2 while the row chunks pass over them: the first chunk streams the
// weights from memory, the others re-read the panel from cache.
template <class W, int Regs>
SSD_TILE void apply_tiles(const W* packed, const Job& j) {
  for (int64_t b0 = j.b_begin; b0 < j.b_end; b0 += kPanelBlocks) {
    const int64_t b1 = std::min(j.b_end, b0 + kPanelBlocks);
    for (int64_t r = 0, rows = 0; r < j.m; r += rows) {
      rows = chunk_rows<W, Regs>(j.m - r);
      chunk_of<W, Regs>(packed, j, rows, r, b0, b1);
    }
  }
}

template <class W>
__attribute__((target("avx2,fma"))) void apply_avx2(const W* packed, const Job& j) {
  apply_tiles<W, 16>(packed, j);
}

template <class W>
__attribute__((target("avx2,fma,avx512f,avx512vl,avx512bw")))
void apply_avx512(const W* packed, const Job& j) {
  apply_tiles<W, 32>(packed, j);
}
#undef SSD_TILE
#endif

template <class W>
void dispatch(const W* packed, const Job& j) {
#ifdef SSD_X86_KERNELS
  if (cpu_linear_uses_avx512()) return apply_avx512<W>(packed, j);
  if (cpu_linear_uses_avx2()) return apply_avx2<W>(packed, j);
#endif
  apply_portable<W>(packed, j);
}

}  // namespace

PackedWeights::PackedWeights(const float* w, int64_t n, int64_t k, std::shared_ptr<WeightArena> arena)
    : n_(n), k_(k), bf16_(false), arena_(arena ? std::move(arena) : std::make_shared<WeightArena>()) {
  if (n < 0 || k < 0 || (!w && n * k > 0))
    throw std::invalid_argument("PackedWeights: bad matrix n=" + std::to_string(n) + " k=" + std::to_string(k));
  const int64_t size = (n + kBlock - 1) / kBlock * kBlock * k;
  bf16_ = bf16_exact(w, n * k);
  void* data = arena_->allocate(static_cast<size_t>(size) * (bf16_ ? sizeof(uint16_t) : sizeof(float)));
  data_ = data;
  auto* half = static_cast<uint16_t*>(data);
  auto* full = static_cast<float*>(data);
  for (int64_t c = 0; c < n; ++c)
    for (int64_t i = 0; i < k; ++i) {
      const int64_t at = packed_at(c, i, k, bf16_);
      const float v = w[c * k + i];
      if (bf16_) {
        uint32_t u;
        std::memcpy(&u, &v, sizeof u);
        half[at] = static_cast<uint16_t>(u >> 16);
      } else {
        full[at] = v;
      }
    }
}

void PackedWeights::apply(const float* x, int64_t m, int64_t x_stride, const float* bias, float* y,
                          int64_t y_stride, int64_t outputs) const {
  apply_blocks(x, m, x_stride, bias, y, y_stride, outputs, 0, blocks(outputs));
}

void PackedWeights::apply_blocks(const float* x, int64_t m, int64_t x_stride, const float* bias, float* y,
                                 int64_t y_stride, int64_t outputs, int64_t block_begin, int64_t block_end) const {
  static_assert(kBlockOutputs == kBlock, "one block size");
  const int64_t n = outputs < 0 ? n_ : outputs;
  if (block_begin < 0 || block_end < block_begin || block_end > (n + kBlock - 1) / kBlock)
    throw std::invalid_argument("PackedWeights::apply_blocks: blocks [" + std::to_string(block_begin) + ", " +
                                std::to_string(block_end) + ") for " + std::to_string(n) + " outputs");
  if (m < 0 || n > n_ || (m > 0 && n > 0 && (!x || !y)) || (m > 1 && (x_stride < k_ || y_stride < n)))
    throw std::invalid_argument("PackedWeights::apply: m=" + std::to_string(m) + ", x_stride=" +
                                std::to_string(x_stride) + ", y_stride=" + std::to_string(y_stride) + ", outputs=" +
                                std::to_string(outputs) + " for [" +
                                std::to_string(n_) + ", " + std::to_string(k_) + "] weights");
  if (m == 0 || n == 0 || block_begin == block_end) return;
  const Job j{x, x_stride, bias, y, y_stride, m, n, k_, block_begin, block_end};
  if (bf16_) return dispatch(static_cast<const uint16_t*>(data_), j);
  dispatch(static_cast<const float*>(data_), j);
}

}  // namespace ssd
