// cuda_emulation.h: just enough of CUDA's execution model to run a kernel body on the CPU (tests only).
//
// A block is 256 fibers (ucontext) on the calling thread; threadIdx.x is the running fiber's index;
// __syncthreads switches back to a scheduler, which resumes every fiber once all of them reached the barrier
// (and aborts on a divergent barrier: some fibers finished while others wait). Between two barriers the
// fibers run one after another in a random order that changes at every barrier, so a missing __syncthreads
// (a read of shared memory another thread writes in the same phase) shows up as a wrong result.
// __shfl_down_sync goes through a slot array between two barriers (valid when, as in our code, every thread
// of the block calls it together); atomicAdd is a plain add (fibers do not preempt each other). Shared
// memory is refilled with garbage before each block. Include this BEFORE the .cuh files. Single-threaded:
// one emulated launch at a time.
#pragma once

#include <ucontext.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <vector>

#define __device__
#define __host__
#define __global__
#define __forceinline__ inline

namespace emu {

constexpr int kBlockThreads = 256;
constexpr size_t kStackBytes = 128 * 1024;

struct Dim3 {
  unsigned x;
};
inline Dim3 thread_idx{0};

struct Fiber {
  ucontext_t context;
  bool done = false;
};

struct Scheduler {
  ucontext_t main;
  std::vector<Fiber> fibers = std::vector<Fiber>(kBlockThreads);
  std::vector<char> stacks = std::vector<char>(kBlockThreads * kStackBytes);
  std::function<void()> body;
  int current = 0;
  std::mt19937 order_rng{2024};
};

inline Scheduler& scheduler() {
  static Scheduler s;
  return s;
}

inline void fiber_entry() {
  Scheduler& s = scheduler();
  s.body();
  s.fibers[s.current].done = true;  // returning resumes s.main through uc_link
}

inline void yield_to_scheduler() {
  Scheduler& s = scheduler();
  swapcontext(&s.fibers[s.current].context, &s.main);
}

// Runs one block: every fiber executes body() until done, phase by phase.
inline void run_block(const std::function<void()>& body) {
  Scheduler& s = scheduler();
  s.body = body;
  for (int t = 0; t < kBlockThreads; ++t) {
    Fiber& f = s.fibers[t];
    f.done = false;
    getcontext(&f.context);
    f.context.uc_stack.ss_sp = &s.stacks[t * kStackBytes];
    f.context.uc_stack.ss_size = kStackBytes;
    f.context.uc_link = &s.main;
    makecontext(&f.context, fiber_entry, 0);
  }
  std::vector<int> order(kBlockThreads);
  for (int t = 0; t < kBlockThreads; ++t) order[t] = t;
  for (;;) {
    std::shuffle(order.begin(), order.end(), s.order_rng);
    for (int t : order) {
      if (s.fibers[t].done) continue;
      s.current = t;
      thread_idx.x = static_cast<unsigned>(t);
      swapcontext(&s.main, &s.fibers[t].context);
    }
    int done = 0;
    for (const Fiber& f : s.fibers) done += f.done ? 1 : 0;
    if (done == kBlockThreads) return;
    if (done != 0) {
      std::fprintf(stderr, "emulated __syncthreads: %d threads finished while others wait (divergent barrier)\n", done);
      std::abort();
    }
  }
}

inline unsigned long long* shuffle_slots() {
  static unsigned long long slots[kBlockThreads];
  return slots;
}

// Runs body(block, shared) for blocks [0, blocks), one block at a time.
template <class Shared, class Body>
void launch(int64_t blocks, const Body& body) {
  std::vector<unsigned char> storage(sizeof(Shared));
  Shared& shared = *reinterpret_cast<Shared*>(storage.data());
  for (int64_t blk = 0; blk < blocks; ++blk) {
    std::memset(storage.data(), 0xCD, storage.size());
    run_block([&] { body(blk, shared); });
  }
}

}  // namespace emu

#define threadIdx (::emu::thread_idx)

inline void __syncthreads() { emu::yield_to_scheduler(); }

inline unsigned long long __shfl_down_sync(unsigned, unsigned long long v, int offset) {
  const unsigned tid = threadIdx.x;
  unsigned long long* slots = emu::shuffle_slots();
  slots[tid] = v;
  __syncthreads();
  const unsigned long long r = (tid & 31u) + offset < 32u ? slots[tid + offset] : v;
  __syncthreads();
  return r;
}

inline unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) {
  const unsigned long long old = *p;
  *p = old + v;
  return old;
}
inline unsigned int atomicAdd(unsigned int* p, unsigned int v) {
  const unsigned int old = *p;
  *p = old + v;
  return old;
}
