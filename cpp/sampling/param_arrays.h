// param_arrays.h: per-sequence (or per-row) sampling parameters as flat host arrays, turned into the
// runtime's SeqVerifyParams / DraftRowParams.
//
// The Python layer validates values and ships one contiguous CPU array per field (ssdcore/ops/__init__.py names
// them: draft_len, onehot, temperature, top_k, top_p, draft_temperature, draft_top_k, draft_top_p,
// saguaro_c, saguaro_fanout, seed, position). These readers check each array's dtype and length and
// throw std::invalid_argument naming the field otherwise. The lookup is the caller's (cpp/bindings/
// reads a Python dict); the arrays must stay alive while the readers run. Pure functions; any thread
// that may call the lookup.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "sampling_transform.h"
#include "tensor_view.h"

namespace ssd {

// draft_len, onehot, the target's and the draft's transforms, saguaro_c, seed, position: n entries each.
std::vector<SeqVerifyParams> seq_verify_params(const ArrayLookup& get, int64_t n);

// temperature, top_k, top_p, saguaro_c, saguaro_fanout, seed, position: n entries each.
std::vector<DraftRowParams> draft_row_params(const ArrayLookup& get, int64_t n);

}  // namespace ssd
