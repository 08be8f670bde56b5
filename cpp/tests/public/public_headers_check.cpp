// public_headers_check.cpp: compiled (by cmake/native_tests.cmake) with ONLY cpp/include on the
// include path, -Wall -Wextra -Wpedantic -Werror, in C++17 and in C++20, next to one translation unit
// per public header. It links no library, so it exercises only what the headers define inline:
// defaults, the KV sizing helpers, ForwardBatch's attended-slot walk and Logits::allocate.
#include <cstdio>
#include <cstring>
#include <vector>

#include "ssdcore/ssdcore.h"

static_assert(SSDCORE_VERSION_MAJOR >= 0 && SSDCORE_VERSION_MINOR >= 0 && SSDCORE_VERSION_PATCH >= 0,
              "version macros");
static_assert(ssdcore::kNumPhases == 8 && ssdcore::kNumSpecSources == 5 && ssdcore::kNumBackups == 4,
              "enumeration sizes");

static int failures = 0;
static void expect(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "FAILED: %s\n", what);
    ++failures;
  }
}

// A tree row at position 7 of a lane whose prefix is 5 slots, with 1 glue slot and its own slot.
static void check_attended_slots() {
  const std::int32_t tokens[] = {3}, positions[] = {7}, lanes[] = {0}, slots[] = {40};
  const std::int32_t attend_len[] = {5}, extra[] = {5, 6, 40, -1}, out_index[] = {0};
  ssdcore::ForwardBatch b;
  b.rows = 1;
  b.tokens = tokens;
  b.positions = positions;
  b.lanes = lanes;
  b.slots = slots;
  b.attend_len = attend_len;
  b.extra_slots = extra;
  b.extra_width = 4;
  b.out_index = out_index;
  b.out_rows = 1;
  std::vector<std::int32_t> seen;
  b.for_each_attended_slot(0, [&](std::int32_t s) { seen.push_back(s); });
  expect(!b.causal(), "tree batch is not causal");
  expect(seen == std::vector<std::int32_t>({0, 1, 2, 3, 4, 5, 6, 40}), "tree attended slots");
  expect(static_cast<std::int32_t>(seen.size()) == positions[0] + 1, "context length = position + 1");

  b.attend_len = nullptr;
  b.extra_slots = nullptr;
  b.extra_width = 0;
  seen.clear();
  b.for_each_attended_slot(0, [&](std::int32_t s) { seen.push_back(s); });
  expect(b.causal() && seen.size() == 41 && seen.back() == 40, "causal attended slots");
}

int main() {
  ssdcore::EngineConfig c;
  expect(c.mode == "ssd" && c.K == 4 && c.fan_out_budget == 8 && c.max_batch == 8, "config defaults");
  expect(c.target_slots() == 1024 && c.scratch_slots() == 32 && c.draft_slots() == 1056, "ssd sizing");
  c.mode = "sd";
  expect(c.scratch_slots() == 0 && c.draft_slots() == c.max_context, "sd needs no scratch");

  ssdcore::SamplingParams p;
  expect(p.temperature == 1.0 && p.top_k == 0 && p.top_p == 1.0 && p.max_tokens == 64, "sampling defaults");

  ssdcore::Logits l = ssdcore::Logits::allocate(2, 3);
  l.mutable_data()[5] = 1.5f;
  expect(l.rows == 2 && l.vocab == 3 && l.row(1)[2] == 1.5f && l.owner != nullptr, "Logits::allocate");

  ssdcore::Result r;
  r.finish_reason = ssdcore::FinishReason::kError;
  expect(!r.ok(), "error result is not ok");
  ssdcore::Event e;
  expect(!e.finished(), "default event is not final");

  check_attended_slots();
  std::printf("public headers %s (C++ %ld): %s\n", SSDCORE_VERSION_STRING, static_cast<long>(__cplusplus),
              failures == 0 ? "ok" : "FAILED");
  return failures == 0 ? 0 : 1;
}
