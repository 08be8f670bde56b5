// hash_lm.h: HashLM, a deterministic toy language model implementing ssdcore::ModelRunner, so the
// example runs the real engine without any weights.
//
// The "model": the logits of the token after a context are a fixed pseudo-random function of the
// last two context tokens and of a digest of the whole context (a hash seeded by `seed`). The draft
// is the same function plus a perturbation of amplitude `noise` (another seed), so it agrees with the
// target on most, not all, greedy choices and speculation is partially accepted. Because the context
// is read back from the runner's own KV through the attention the engine describes (causal, or the
// SSD tree masks), a wrong mask or a KV slot written in the wrong place changes the output, and
// ar/sd/ssd would then disagree. forward() also checks the ForwardBatch invariants and throws if one
// is broken. `forward_us` simulates the cost of one forward (a sleep), to make the timings tell.
//
// KV: lanes x slots token ids (-1 = never written), sized from EngineConfig (max_batch lanes;
// target_slots() or draft_slots() slots).
// Threads: as ssdcore::ModelRunner requires, one engine worker thread calls on_worker_start() and
// then every forward(); forward() throws if another thread calls it. No locks are needed.
#pragma once
#include <cstdint>
#include <thread>
#include <vector>

#include <ssdcore/ssdcore.h>

struct HashLMSpec {
  std::int64_t vocab = 96;
  std::uint32_t seed = 1;        // the "weights"
  float noise = 0.0f;            // draft: amplitude of the perturbation (0 = exactly the target)
  std::uint32_t noise_seed = 2;
  int forward_us = 0;            // simulated cost of one forward call, microseconds
};

class HashLM final : public ssdcore::ModelRunner {
 public:
  HashLM(const HashLMSpec& spec, int lanes, int slots);

  std::int64_t vocab_size() const override { return spec_.vocab; }
  void on_worker_start() override { worker_ = std::this_thread::get_id(); }
  ssdcore::Logits forward(const ssdcore::ForwardBatch& batch) override;

  std::int64_t forward_calls() const { return calls_; }  // read after the engine is closed

 private:
  void check_row(const ssdcore::ForwardBatch& b, std::size_t r) const;
  void write_logits(const std::vector<std::int32_t>& context, float* row) const;

  HashLMSpec spec_;
  int lanes_;
  int slots_;
  std::vector<std::int32_t> kv_;  // [lanes * slots]
  std::thread::id worker_;
  std::int64_t calls_ = 0;
};
