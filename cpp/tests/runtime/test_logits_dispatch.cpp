// test_logits_dispatch.cpp: the engine runs verification, draft sampling, the fork and the finite
// checks through the LogitsOps of the device its logits report, reads each proposal's q row where
// the draft left it (no copy), and passes the workers only ids, lengths and handles: worker_bytes per
// round is the same for two vocabulary sizes and within a bound in B and K.
//
// The runners tag their (host) logits as CUDA and the test registers a counting CPU reference as the
// CUDA backend, so the device-dispatch path runs on any machine.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "check.h"
#include "cpu_logits_ops.h"
#include "engine.h"

using namespace ssd;

namespace {

// Logits of a row depend only on its token and position, the same for target and draft: p == q,
// so every proposal is accepted and the rounds have the same shape whatever V is.
class FakeRunner final : public ModelRunner {
 public:
  FakeRunner(int64_t vocab, bool keep) : vocab_(vocab), keep_(keep) {}
  int64_t vocab_size() const override { return vocab_; }
  Logits forward(const ForwardBatch& r) override {
    auto out = std::make_shared<std::vector<float>>(static_cast<size_t>(r.out_rows * vocab_), 0.0f);
    for (size_t i = 0; i < r.rows; ++i) {
      if (r.out_index[i] < 0) continue;
      float* row = out->data() + r.out_index[i] * vocab_;
      uint64_t x = static_cast<uint64_t>(r.tokens[i]) * 1000003u + static_cast<uint64_t>(r.positions[i]) * 7919u;
      for (int64_t c = 0; c < vocab_; ++c) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        row[c] = static_cast<float>((x >> 40) % 4096) / 1024.0f;  // [0, 4)
      }
    }
    Logits l;
    l.data = out->data(), l.rows = r.out_rows, l.vocab = vocab_, l.owner = out;
    l.device = DeviceType::kCUDA;  // an emulated device: host memory served by the test's backend
    if (keep_) {
      std::lock_guard<std::mutex> lk(m_);
      produced_.push_back(out);
    }
    return l;
  }
  // Whether p points at the start of a row of some logits this runner returned.
  bool produced(const float* p) const {
    std::lock_guard<std::mutex> lk(m_);
    for (const auto& buf : produced_) {
      const float* b = buf->data();
      if (p >= b && p < b + buf->size() && (p - b) % vocab_ == 0) return true;
    }
    return false;
  }

 private:
  int64_t vocab_;
  bool keep_;
  mutable std::mutex m_;
  std::vector<std::shared_ptr<std::vector<float>>> produced_;
};

struct Counts {
  std::atomic<int> verify{0}, sample{0}, top{0}, bad{0}, mask{0}, q_rows{0}, foreign_rows{0};
};

// The CPU reference, counted, standing in for a device backend.
class CountingOps final : public LogitsOps {
 public:
  CountingOps(Counts* counts, const FakeRunner* draft) : counts_(counts), draft_(draft) {}
  void verify(const Logits& target, const VerifyBatch& vb, const VerifyResult& out) override {
    counts_->verify++;
    for (int64_t r = 0; vb.draft_rows && r < static_cast<int64_t>(vb.batch) * vb.k; ++r) {
      if (vb.draft_rows[r] == nullptr) continue;
      counts_->q_rows++;
      if (draft_ == nullptr || !draft_->produced(vb.draft_rows[r])) counts_->foreign_rows++;
    }
    cpu_.verify(target, vb, out);
  }
  void sample_draft(const Logits& logits, const DraftBatch& batch, int64_t* tokens) override {
    counts_->sample++;
    cpu_.sample_draft(logits, batch, tokens);
  }
  void top_tokens(const Logits& logits, const std::vector<TopRequest>& requests,
                  std::vector<std::vector<int32_t>>* out) override {
    counts_->top++;
    cpu_.top_tokens(logits, requests, out);
  }
  void find_bad(const Logits& logits, const std::vector<int64_t>& rows, std::vector<BadLogit>* out) override {
    counts_->bad++;
    cpu_.find_bad(logits, rows, out);
  }
  void apply_masks(const Logits& logits, const std::vector<int64_t>& rows, const uint32_t* masks,
                   int32_t words) override {
    counts_->mask++;
    cpu_.apply_masks(logits, rows, masks, words);
  }

 private:
  Counts* counts_;
  const FakeRunner* draft_;
  CpuLogitsOps cpu_;
};

constexpr int kK = 4, kBatch = 2, kPrompt = 5, kMaxTokens = 25;

struct Run {
  StatsSnapshot stats;
  int finished = 0;
};

// `batch` sampled requests in ssd mode; CPU-tagged logits would reach `cpu_counts`, CUDA-tagged
// `counts`. (With one request the rounds do not depend on when a second one is admitted.)
Run run(int64_t vocab, int batch, Counts* counts, Counts* cpu_counts) {
  FakeRunner target(vocab, false), draft(vocab, true);
  EngineConfig config;
  config.mode = "ssd", config.K = kK, config.backup = "jit", config.max_batch = kBatch, config.max_context = 64;
  LogitsBackendsFactory backends = [&] {
    LogitsBackends b;
    b.cpu = std::make_shared<CountingOps>(cpu_counts, &draft);
    b.cuda = std::make_shared<CountingOps>(counts, &draft);
    return b;
  };
  Run out;
  {
    Engine engine(config, &target, &draft, {}, backends);
    SamplingParams p;
    p.temperature = 1.0, p.max_tokens = kMaxTokens;
    for (int i = 0; i < batch; ++i) {
      p.seed = 11 + i;
      engine.submit({1, 2, 3, 4, 5}, p, false);
    }
    OutputEvent ev;
    while (out.finished < batch && engine.poll(&ev, std::chrono::milliseconds(60000)) == PopStatus::kItem) {
      if (ev.finish != FinishReason::kNone) out.finished++;
      SSD_CHECK(ev.finish != FinishReason::kError);
    }
    out.stats = engine.stats();
  }
  return out;
}

}  // namespace

SSD_TEST(dispatch_follows_the_logits_device_and_reads_q_in_place) {
  Counts counts, cpu;
  Run r = run(64, kBatch, &counts, &cpu);
  SSD_CHECK_EQ(r.finished, kBatch);
  SSD_CHECK(counts.verify > 0 && counts.sample > 0 && counts.top > 0 && counts.bad > 0);
  SSD_CHECK_EQ(cpu.verify + cpu.sample + cpu.top + cpu.bad, 0);  // nothing ran on the CPU backend
  SSD_CHECK(counts.q_rows > 0);                                  // sampled: verification read q rows...
  SSD_CHECK_EQ(counts.foreign_rows.load(), 0);                   // ...where the draft forward left them
  SSD_CHECK(r.stats.mean_accepted > kK - 0.5);                   // p == q: (almost) everything accepted
  SSD_CHECK_EQ(counts.mask.load() + cpu.mask.load(), 0);         // no constrained request: no masking op
}

SSD_TEST(worker_bytes_per_round_does_not_grow_with_vocab) {
  Counts a, b, c, cpu;
  Run small = run(64, 1, &a, &cpu), large = run(4096, 1, &b, &cpu);
  SSD_CHECK(small.stats.rounds > 0 && small.stats.worker_bytes > 0);
  SSD_CHECK_EQ(small.stats.rounds, large.stats.rounds);
  // Not equal bytes: what crosses also depends on timing (whether a warm-up's reply or a
  // pre-speculation came first), never on V. A dense q would add a row of V floats per proposal.
  SSD_CHECK(large.stats.worker_bytes_per_round < small.stats.worker_bytes_per_round + 4096 * sizeof(float) / 16.0);
  Run batched = run(4096, kBatch, &c, &cpu);
  // Bound in B and K: per round one ToDraft (outcomes of K + 1 decided tokens) and one ToTarget (K
  // tokens, K Saguaro sizes and K row handles per sequence), plus the joins and warm-ups once.
  const double per_round = sizeof(ToDraft) + sizeof(ToTarget) +
                           kBatch * (sizeof(SeqOutcome) + (kK + 1) * sizeof(int32_t) +
                                     sizeof(std::pair<int64_t, Speculation>) +
                                     kK * (2 * sizeof(int32_t) + sizeof(LogitsRow)));
  const double once = 2 * (sizeof(ToDraft) + kBatch * (sizeof(DraftJoin) + (kPrompt + 1) * sizeof(int32_t)));
  SSD_CHECK(batched.stats.worker_bytes > 0);
  SSD_CHECK(batched.stats.worker_bytes <= batched.stats.rounds * per_round + once);
  SSD_CHECK(batched.stats.worker_bytes_per_round < kBatch * kK * 4096 * sizeof(float) / 16.0);  // vs dense q
}

int main() { return ssd_test::run_all(); }
