// cpu_model_runner.cpp: see cpu_model_runner.h.
#include "cpu_model_runner.h"

#include <limits>
#include <stdexcept>
#include <string>

namespace ssd {

CpuModelRunner::CpuModelRunner(std::shared_ptr<const CpuModel> model, const CpuKvCache& kv, const CpuRope& rope,
                               int64_t vocab, int64_t lm_rows, std::vector<int> cores, int threads)
    : model_(std::move(model)), kv_(kv), rope_(rope), vocab_(vocab), lm_rows_(lm_rows), cores_(std::move(cores)),
      threads_(threads) {
  if (!model_) throw std::invalid_argument("CpuModelRunner: no model");
  if (threads_ < 1) throw std::invalid_argument("CpuModelRunner: threads = " + std::to_string(threads_) + ", allowed >= 1");
  if (lm_rows_ < 1 || lm_rows_ > vocab_)
    throw std::invalid_argument("CpuModelRunner: lm_rows = " + std::to_string(lm_rows_) + " not in [1, vocab = " +
                                std::to_string(vocab_) + "]");
}

void CpuModelRunner::on_worker_start() {
  pin_current_thread(cores_);
  if (threads_ > 1) team_ = std::make_unique<ThreadTeam>(threads_, cores_);
}

Logits CpuModelRunner::forward(const ForwardBatch& r) {
  ++calls_;
  const int64_t n = static_cast<int64_t>(r.rows);
  std::vector<int64_t> source(static_cast<size_t>(r.out_rows), 0);  // unwritten result rows: unspecified
  for (int64_t i = 0; i < n; ++i)
    if (r.out_index[i] >= 0) source.at(static_cast<size_t>(r.out_index[i])) = i;
  auto out = std::make_shared<std::vector<float>>(static_cast<size_t>(r.out_rows * vocab_));
  model_->forward(r, kv_, rope_, CpuLogits{source.data(), r.out_rows, lm_rows_, out->data(), vocab_}, team_.get());
  for (int64_t j = 0; lm_rows_ < vocab_ && j < r.out_rows; ++j)
    for (int64_t c = lm_rows_; c < vocab_; ++c) (*out)[j * vocab_ + c] = -std::numeric_limits<float>::infinity();
  Logits logits;
  logits.data = out->data(), logits.rows = r.out_rows, logits.vocab = vocab_, logits.owner = out;
  return logits;
}

}  // namespace ssd
