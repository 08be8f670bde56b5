// param_arrays.cpp: see param_arrays.h.
#include "param_arrays.h"

namespace ssd {
namespace {

template <class T>
const T* host_array(const ArrayLookup& get, const std::string& name, DType dtype, int64_t n) {
  const TensorView v = get(name);
  expect_view(v, name, dtype, {n}, DeviceType::kCPU);
  return v.ptr<T>();
}

// The sampling transforms named `<prefix>temperature`, `<prefix>top_k`, `<prefix>top_p`, one per row.
struct SamplingArrays {
  const float* temperature;
  const int32_t* top_k;
  const float* top_p;
  SamplingArrays(const ArrayLookup& get, const std::string& prefix, int64_t n)
      : temperature(host_array<float>(get, prefix + "temperature", DType::kFloat32, n)),
        top_k(host_array<int32_t>(get, prefix + "top_k", DType::kInt32, n)),
        top_p(host_array<float>(get, prefix + "top_p", DType::kFloat32, n)) {}
  SamplingTransform at(int64_t i) const { return SamplingTransform{temperature[i], top_k[i], top_p[i]}; }
};

// The Saguaro factor and the RNG key (seed, position), one per row.
struct KeyArrays {
  const float* saguaro_c;
  const int64_t* seed;
  const int64_t* position;
  KeyArrays(const ArrayLookup& get, int64_t n)
      : saguaro_c(host_array<float>(get, "saguaro_c", DType::kFloat32, n)),
        seed(host_array<int64_t>(get, "seed", DType::kInt64, n)),
        position(host_array<int64_t>(get, "position", DType::kInt64, n)) {}
};

}  // namespace

std::vector<SeqVerifyParams> seq_verify_params(const ArrayLookup& get, int64_t n) {
  const auto* len = host_array<int32_t>(get, "draft_len", DType::kInt32, n);
  const auto* oh = host_array<uint8_t>(get, "onehot", DType::kUInt8, n);
  const SamplingArrays target(get, "", n), draft(get, "draft_", n);
  const KeyArrays key(get, n);
  std::vector<SeqVerifyParams> params(n);
  for (int64_t b = 0; b < n; ++b) {
    SeqVerifyParams& p = params[b];
    p.target = target.at(b);
    p.draft = draft.at(b);
    p.saguaro_c = key.saguaro_c[b];
    p.draft_len = len[b];
    p.seed = static_cast<uint64_t>(key.seed[b]);
    p.position = key.position[b];
    p.onehot = oh[b] ? 1 : 0;
  }
  return params;
}

std::vector<DraftRowParams> draft_row_params(const ArrayLookup& get, int64_t n) {
  const SamplingArrays sampling(get, "", n);
  const KeyArrays key(get, n);
  const auto* f = host_array<int32_t>(get, "saguaro_fanout", DType::kInt32, n);
  std::vector<DraftRowParams> params(n);
  for (int64_t r = 0; r < n; ++r) {
    params[r].sampling = sampling.at(r);
    params[r].saguaro = SaguaroParams{key.saguaro_c[r], f[r]};
    params[r].seed = static_cast<uint64_t>(key.seed[r]);
    params[r].position = key.position[r];
  }
  return params;
}

}  // namespace ssd
