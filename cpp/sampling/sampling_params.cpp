// sampling_params.cpp: ssdcore::SamplingParams::validate(); see sampling_params.h.
#include "sampling_params.h"

#include <stdexcept>
#include <string>

namespace ssdcore {

void SamplingParams::validate() const {
  ssd::check_sampling_transform(temperature, top_k, top_p, "SamplingParams");
  // seed: every uint64 value is valid; ignore_eos: a bool.
  if (max_tokens < 1) {
    ssd::invalid_sampling_value("SamplingParams", "max_tokens", std::to_string(max_tokens),
                                "an integer in [1, 2147483647]");
  }
  for (std::int32_t id : stop_token_ids) {
    if (id < 0) {
      std::string ids = "[";
      for (std::size_t i = 0; i < stop_token_ids.size(); ++i)
        ids += (i ? ", " : "") + std::to_string(stop_token_ids[i]);
      ssd::invalid_sampling_value("SamplingParams", "stop_token_ids", ids + "]", "token ids in [0, 2147483647]");
    }
  }
  if (constraint < 0) {
    ssd::invalid_sampling_value("SamplingParams", "constraint", std::to_string(constraint),
                                "0 (none) or a TokenMasker key > 0");
  }
  if (constraint > 0 && ignore_eos) {
    ssd::invalid_sampling_value("SamplingParams", "ignore_eos", "True together with constraint = " +
                                std::to_string(constraint),
                                "False for a constrained request (it ends where its grammar ends, at EOS)");
  }
}

}  // namespace ssdcore
