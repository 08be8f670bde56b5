// test_param_arrays.cpp: flat host arrays -> SeqVerifyParams / DraftRowParams, and the errors for a
// missing field, a wrong dtype, a wrong length and a non-CPU array.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "check.h"
#include "param_arrays.h"

using namespace ssd;

namespace {

// Owns one array per field and hands out views of them, like the Python dict of tensors does.
struct Fields {
  std::map<std::string, std::vector<float>> f32;
  std::map<std::string, std::vector<int32_t>> i32;
  std::map<std::string, std::vector<int64_t>> i64;
  std::map<std::string, std::vector<uint8_t>> u8;

  template <class T>
  static TensorView view(std::vector<T>& v, DType dtype) {
    TensorView t;
    t.data = v.data();
    t.dtype = dtype;
    t.shape = {static_cast<int64_t>(v.size())};
    t.strides = {1};
    return t;
  }
  ArrayLookup lookup() {
    return [this](const std::string& name) -> TensorView {
      if (f32.count(name)) return view(f32[name], DType::kFloat32);
      if (i32.count(name)) return view(i32[name], DType::kInt32);
      if (i64.count(name)) return view(i64[name], DType::kInt64);
      if (u8.count(name)) return view(u8[name], DType::kUInt8);
      throw std::invalid_argument("params: missing array " + name);
    };
  }
};

Fields two_sequences() {
  Fields f;
  f.i32["draft_len"] = {3, 0};
  f.u8["onehot"] = {0, 1};
  f.f32["temperature"] = {0.5f, 0.0f};
  f.i32["top_k"] = {7, 0};
  f.f32["top_p"] = {0.9f, 1.0f};
  f.f32["draft_temperature"] = {1.5f, 1.0f};
  f.i32["draft_top_k"] = {0, 3};
  f.f32["draft_top_p"] = {1.0f, 0.25f};
  f.f32["saguaro_c"] = {0.3f, 1.0f};
  f.i64["seed"] = {-1, 42};
  f.i64["position"] = {10, 99};
  return f;
}

}  // namespace

SSD_TEST(seq_verify_params_read_every_field) {
  Fields f = two_sequences();
  const std::vector<SeqVerifyParams> p = seq_verify_params(f.lookup(), 2);
  SSD_CHECK_EQ(p.size(), size_t{2});
  SSD_CHECK_EQ(p[0].draft_len, 3);
  SSD_CHECK_EQ(p[1].onehot, 1);
  SSD_CHECK_EQ(p[0].target.temperature, 0.5f);
  SSD_CHECK_EQ(p[0].target.top_k, 7);
  SSD_CHECK_EQ(p[0].target.top_p, 0.9f);
  SSD_CHECK_EQ(p[0].draft.temperature, 1.5f);
  SSD_CHECK_EQ(p[1].draft.top_k, 3);
  SSD_CHECK_EQ(p[1].draft.top_p, 0.25f);
  SSD_CHECK_EQ(p[0].saguaro_c, 0.3f);
  SSD_CHECK_EQ(p[0].seed, ~uint64_t{0});  // int64 -1 keeps its bits
  SSD_CHECK_EQ(p[1].position, int64_t{99});
}

SSD_TEST(draft_row_params_read_every_field) {
  Fields f = two_sequences();
  f.i32["saguaro_fanout"] = {4, 0};
  const std::vector<DraftRowParams> p = draft_row_params(f.lookup(), 2);
  SSD_CHECK_EQ(p[0].sampling.top_k, 7);
  SSD_CHECK_EQ(p[0].saguaro.c, 0.3f);
  SSD_CHECK_EQ(p[0].saguaro.fanout, 4);
  SSD_CHECK_EQ(p[1].seed, uint64_t{42});
  SSD_CHECK_EQ(p[0].position, int64_t{10});
}

SSD_TEST(bad_arrays_throw) {
  Fields missing = two_sequences();
  missing.f32.erase("draft_top_p");
  SSD_CHECK_THROWS(seq_verify_params(missing.lookup(), 2));
  Fields no_fanout = two_sequences();  // draft rows need saguaro_fanout too
  SSD_CHECK_THROWS(draft_row_params(no_fanout.lookup(), 2));
  Fields wrong_dtype = two_sequences();
  wrong_dtype.i32.erase("top_k");
  wrong_dtype.i64["top_k"] = {7, 0};
  SSD_CHECK_THROWS(seq_verify_params(wrong_dtype.lookup(), 2));
  Fields fine = two_sequences();
  SSD_CHECK_THROWS(seq_verify_params(fine.lookup(), 3));  // every array has 2 entries
  ArrayLookup on_gpu = [&fine](const std::string& name) {
    TensorView v = fine.lookup()(name);
    v.device = DeviceType::kCUDA;
    return v;
  };
  SSD_CHECK_THROWS(seq_verify_params(on_gpu, 2));
}

int main() { return ssd_test::run_all(); }
