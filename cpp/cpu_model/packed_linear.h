// packed_linear.h: a model weight matrix W [n, k] repacked for y = x W^T + b over a few activation rows
// (decode: 1, verification: K+1, tree steps: a few dozen) on one CPU thread.
//
// Layout: W is cut into blocks of 8 output rows (the last block zero-padded); a block stores its
// 8 x k values k-major (for each input index, the 8 weights of that column), so the kernel reads each
// block as one sequential stream and multiplies 8 outputs by one broadcast activation per step. Values
// are kept as bfloat16 bits when every weight is exactly a bfloat16 (checkpoints stored in bf16 and
// loaded as float32: the same products at half the memory traffic, which bounds a decode), else as
// float32.
//
// Invariant (batch invariance): y[m][c] = fma-chain over i = 0..k-1 of W[c][i] * x[m][i] starting from
// 0, then + b[c], in that order for every tile shape, so a row's output never depends on how many rows
// share the call: a token's logits are bitwise equal in a decode and in a verification.
//
// The AVX2+FMA path is chosen at run time (with AVX-512VL/BW: the same code with 32 registers, up to 8
// rows per pass over the weights); elsewhere a portable loop in the same order (std::fma).
// The packed values live in a WeightArena (weight_arena.h: huge pages), shared by a model's matrices.
// Immutable after construction; apply() is const, allocation-free and reentrant (any thread).
#pragma once

#include <cstdint>
#include <memory>

#include "weight_arena.h"

namespace ssd {

class PackedWeights {
 public:
  PackedWeights() = default;
  // Copies w ([n, k], row stride k) into `arena` (a new one of its own when null). Throws
  // std::invalid_argument for negative sizes or a null w.
  PackedWeights(const float* w, int64_t n, int64_t k, std::shared_ptr<WeightArena> arena = nullptr);

  int64_t rows() const { return n_; }
  int64_t cols() const { return k_; }
  bool bf16() const { return bf16_; }

  // y[m, :outputs] = x[m, k] W[:outputs]^T (+ bias); outputs < 0 means all n rows of W. Row strides in
  // elements. Throws std::invalid_argument on bad sizes, strides or null pointers.
  void apply(const float* x, int64_t m, int64_t x_stride, const float* bias, float* y, int64_t y_stride,
             int64_t outputs = -1) const;
  // The same for the outputs of blocks [block_begin, block_end) only (blocks of kBlockOutputs output
  // columns, the last one partial), so threads can split one product by columns; every output is the
  // same fma chain whatever the split.
  void apply_blocks(const float* x, int64_t m, int64_t x_stride, const float* bias, float* y, int64_t y_stride,
                    int64_t outputs, int64_t block_begin, int64_t block_end) const;
  static constexpr int64_t kBlockOutputs = 8;
  // Blocks covering `outputs` (< 0: all rows of W).
  int64_t blocks(int64_t outputs = -1) const {
    return ((outputs < 0 ? n_ : outputs) + kBlockOutputs - 1) / kBlockOutputs;
  }

 private:
  int64_t n_ = 0, k_ = 0;
  bool bf16_ = false;
  std::shared_ptr<WeightArena> arena_;  // owns data_
  const void* data_ = nullptr;
};

}  // namespace ssd
