// sequence.cpp: see sequence.h.
#include "sequence.h"

#include <algorithm>

namespace ssd {

static bool contains(const std::vector<int32_t>& ids, int32_t token) {
  return std::find(ids.begin(), ids.end(), token) != ids.end();
}

int32_t Sequence::commit(const int32_t* decided, int32_t n, const std::vector<int32_t>& eos_ids) {
  int32_t appended = 0;
  for (int32_t i = 0; i < n && !finished(); ++i) {
    int32_t token = decided[i];
    if ((!params.ignore_eos && contains(eos_ids, token)) || contains(params.stop_token_ids, token)) {
      finish = FinishReason::kStop;
      break;
    }
    tokens.push_back(token);
    ++appended;
    if (generated() >= params.max_tokens) finish = FinishReason::kLength;
  }
  return appended;
}

}  // namespace ssd
