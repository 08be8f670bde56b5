// logits_ops.cpp: see logits_ops.h.
#include "logits_ops.h"

#include <stdexcept>
#include <string>

#include "cpu_logits_ops.h"
#ifdef SSD_WITH_CUDA
#include "cuda_logits_ops.h"
#endif

namespace ssd {

LogitsOps& LogitsBackends::on(const Logits& logits) const {
  if (logits.device == DeviceType::kCPU && cpu) return *cpu;
  if (logits.device == DeviceType::kCUDA && cuda) return *cuda;
  if (logits.device == DeviceType::kCUDA) {
    throw std::runtime_error("logits on CUDA device " + std::to_string(logits.device_index) +
                             ", but this build of ssdcore has no CUDA kernels (built without nvcc); "
                             "return CPU logits or rebuild with CUDA");
  }
  throw std::runtime_error("logits on an unsupported device: allowed CPU or CUDA");
}

LogitsBackends built_in_logits_backends() {
  LogitsBackends b;
  b.cpu = std::make_shared<CpuLogitsOps>();
#ifdef SSD_WITH_CUDA
  b.cuda = make_cuda_logits_ops();
#endif
  return b;
}

void check_rows_finite(LogitsOps& ops, const Logits& logits, const std::vector<int64_t>& rows,
                       const std::vector<int64_t>& positions, const std::vector<char>* masked,
                       std::vector<char>* emptied) {
  std::vector<BadLogit> bad;
  ops.find_bad(logits, rows, &bad);
  if (emptied != nullptr) emptied->assign(rows.size(), 0);
  for (size_t i = 0; i < bad.size(); ++i) {
    if (bad[i].column < 0) continue;
    if (emptied != nullptr && masked != nullptr && (*masked)[i] && bad[i].column == logits.vocab) {
      (*emptied)[i] = 1;
      continue;
    }
    throw NonFiniteLogits(non_finite_message(bad[i], logits.vocab, positions[i]));
  }
}

}  // namespace ssd
