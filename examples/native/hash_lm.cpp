// hash_lm.cpp: see hash_lm.h.
#include "hash_lm.h"

#include <chrono>
#include <stdexcept>
#include <string>

namespace {

// A 32-bit integer hash (xorshift-multiply rounds).
std::uint32_t mix(std::uint32_t x) {
  x ^= x >> 16;
  x *= 0x21f0aaadU;
  x ^= x >> 15;
  x *= 0x735a2d97U;
  x ^= x >> 15;
  return x;
}

// A uniform float in [0, 1) from four integers.
float uniform(std::uint32_t a, std::uint32_t b, std::uint32_t c, std::uint32_t d) {
  std::uint32_t h = mix(a ^ mix(b ^ mix(c ^ mix(d + 0x9e3779b9U))));
  return static_cast<float>(h >> 8) * (1.0f / 16777216.0f);
}

}  // namespace

HashLM::HashLM(const HashLMSpec& spec, int lanes, int slots)
    : spec_(spec), lanes_(lanes), slots_(slots), kv_(static_cast<std::size_t>(lanes) * slots, -1) {
  if (spec.vocab < 2 || lanes < 1 || slots < 1) throw std::invalid_argument("HashLM: bad sizes");
}

// The ForwardBatch contract (ssdcore/model_runner.h) for row r: lane and slot in range, the context
// it attends to is positions[r] + 1 slots long and ends with its own slot.
void HashLM::check_row(const ssdcore::ForwardBatch& b, std::size_t r) const {
  auto fail = [&](const std::string& what) {
    throw std::runtime_error("HashLM: row " + std::to_string(r) + ": " + what);
  };
  if (b.lanes[r] < 0 || b.lanes[r] >= lanes_) fail("lane out of range");
  if (b.slots[r] < 0 || b.slots[r] >= slots_) fail("slot " + std::to_string(b.slots[r]) + " out of range");
  if (b.tokens[r] < 0 || b.tokens[r] >= spec_.vocab) fail("token out of range");
  std::int32_t count = 0, last = -1;
  b.for_each_attended_slot(r, [&](std::int32_t s) {
    if (s < 0 || s >= slots_) fail("attends to slot " + std::to_string(s) + " out of range");
    ++count;
    last = s;
  });
  if (count != b.positions[r] + 1) {
    fail("attends to " + std::to_string(count) + " slots at position " + std::to_string(b.positions[r]));
  }
  if (last != b.slots[r]) fail("does not attend to its own slot last");
}

void HashLM::write_logits(const std::vector<std::int32_t>& context, float* row) const {
  const std::uint32_t p1 = static_cast<std::uint32_t>(context.back());
  const std::uint32_t p2 =
      context.size() > 1 ? static_cast<std::uint32_t>(context[context.size() - 2]) : 0xffffu;
  std::uint32_t digest = 0;  // order-sensitive digest of the whole context, 4 buckets
  for (std::int32_t t : context) digest = mix(digest ^ static_cast<std::uint32_t>(t));
  const std::uint32_t key = (p2 << 16) ^ p1 ^ ((digest & 3u) << 30);
  for (std::int64_t v = 0; v < spec_.vocab; ++v) {
    const std::uint32_t t = static_cast<std::uint32_t>(v);
    float logit = 8.0f * uniform(spec_.seed, key, t, 0);
    if (spec_.noise != 0.0f) logit += spec_.noise * uniform(spec_.noise_seed, key, t, 1);
    row[v] = logit;
  }
}

ssdcore::Logits HashLM::forward(const ssdcore::ForwardBatch& b) {
  if (std::this_thread::get_id() != worker_) {
    throw std::logic_error("HashLM::forward called from a thread other than its worker");
  }
  ++calls_;
  if (spec_.forward_us > 0) std::this_thread::sleep_for(std::chrono::microseconds(spec_.forward_us));
  for (std::size_t r = 0; r < b.rows; ++r) check_row(b, r);
  // Every row writes its KV before any row reads (as a transformer's batched forward does).
  for (std::size_t r = 0; r < b.rows; ++r) {
    kv_[static_cast<std::size_t>(b.lanes[r]) * slots_ + b.slots[r]] = b.tokens[r];
  }

  ssdcore::Logits out = ssdcore::Logits::allocate(b.out_rows, spec_.vocab);
  std::vector<std::int32_t> context;
  for (std::size_t r = 0; r < b.rows; ++r) {
    if (b.out_index[r] < 0) continue;
    if (b.out_index[r] >= b.out_rows) throw std::runtime_error("HashLM: out_index beyond out_rows");
    const std::int32_t* lane_kv = kv_.data() + static_cast<std::size_t>(b.lanes[r]) * slots_;
    context.clear();
    b.for_each_attended_slot(r, [&](std::int32_t s) { context.push_back(lane_kv[s]); });
    for (std::int32_t t : context) {
      if (t < 0) throw std::runtime_error("HashLM: row attends to a KV slot never written");
    }
    write_logits(context, out.mutable_data() + static_cast<std::size_t>(b.out_index[r]) * spec_.vocab);
  }
  return out;
}
