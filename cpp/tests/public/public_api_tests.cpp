// public_api_tests.cpp: the public C++ API (ssdcore::Engine and friends) against toy model runners,
// through <ssdcore/ssdcore.h> only. Built by cmake/native_tests.cmake in C++17 and in C++20 with
// -Wall -Wextra -Wpedantic -Werror. Covers: ar == sd == ssd at temperature 0 (generate and the
// async submit/wait/poll paths), streaming callbacks (tokens, early stop, exceptions), model runner
// errors and bad logits as error Results, invalid arguments, close(), stats and version.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "check.h"
#include "hash_mix.h"
#include "ssdcore/ssdcore.h"

namespace {

constexpr std::int64_t kVocab = 48;

using ssd_test::mix;
float unit(std::uint32_t a, std::uint32_t b, std::uint32_t c, std::uint32_t d) {
  return static_cast<float>(mix(a ^ mix(b ^ mix(c ^ mix(d)))) >> 8) / 16777216.0f;
}

// Logits depend on the last two context tokens, read back from the runner's own KV through the
// attention the batch describes; the draft adds noise so that only part of its proposals pass.
class TestModel : public ssdcore::ModelRunner {
 public:
  TestModel(int lanes, int slots, float noise) : slots_(slots), noise_(noise), kv_(lanes * slots, -1) {}
  std::int64_t vocab_size() const override { return vocab_; }
  void on_worker_start() override { started_.fetch_add(1); }

  ssdcore::Logits forward(const ssdcore::ForwardBatch& b) override {
    if (sleep_us_ > 0) std::this_thread::sleep_for(std::chrono::microseconds(sleep_us_));
    if (calls_.fetch_add(1) + 1 == fail_at_) throw std::runtime_error("injected failure");
    for (std::size_t r = 0; r < b.rows; ++r) kv_[b.lanes[r] * slots_ + b.slots[r]] = b.tokens[r];
    ssdcore::Logits out = ssdcore::Logits::allocate(b.out_rows, bad_vocab_ ? vocab_ + 1 : vocab_);
    for (std::size_t r = 0; r < b.rows; ++r) {
      if (b.out_index[r] < 0) continue;
      std::vector<std::int32_t> ctx;
      b.for_each_attended_slot(r, [&](std::int32_t s) { ctx.push_back(kv_[b.lanes[r] * slots_ + s]); });
      if (static_cast<std::int32_t>(ctx.size()) != b.positions[r] + 1 || ctx.back() != b.tokens[r]) {
        throw std::runtime_error("attention does not match the position");
      }
      const std::uint32_t p1 = static_cast<std::uint32_t>(ctx.back());
      const std::uint32_t p2 = ctx.size() > 1 ? static_cast<std::uint32_t>(ctx[ctx.size() - 2]) : 999u;
      float* row = out.mutable_data() + b.out_index[r] * out.vocab;
      for (std::int64_t v = 0; v < vocab_; ++v) {
        const std::uint32_t t = static_cast<std::uint32_t>(v);
        row[v] = 4.0f * unit(1, p2, p1, t) + noise_ * unit(2, p2, p1, t);
      }
    }
    return out;
  }

  int calls() const { return calls_.load(); }
  int started() const { return started_.load(); }
  void fail_at(int call) { fail_at_ = call; }
  void set_sleep_us(int us) { sleep_us_ = us; }
  void set_bad_vocab(bool bad) { bad_vocab_ = bad; }

 private:
  const std::int64_t vocab_ = kVocab;
  const int slots_;
  const float noise_;
  std::vector<std::int32_t> kv_;
  std::atomic<int> calls_{0};
  std::atomic<int> started_{0};
  std::atomic<int> fail_at_{-1};
  std::atomic<int> sleep_us_{0};
  std::atomic<bool> bad_vocab_{false};
};

ssdcore::EngineConfig config_for(const std::string& mode) {
  ssdcore::EngineConfig c;
  c.mode = mode;
  c.K = 3;
  c.fan_out_budget = 4;
  c.max_batch = 4;
  c.max_context = 128;
  return c;
}

// A target/draft pair sized for `c`, and the engine over them.
struct Rig {
  explicit Rig(const ssdcore::EngineConfig& c, std::vector<std::int32_t> eos = {})
      : target(c.max_batch, c.target_slots(), 0.0f),
        draft(c.max_batch, c.draft_slots(), 1.5f),
        engine(c, &target, c.mode == "ar" ? nullptr : &draft, std::move(eos)) {}
  TestModel target;
  TestModel draft;
  ssdcore::Engine engine;
};

ssdcore::SamplingParams greedy(int max_tokens) {
  ssdcore::SamplingParams p;
  p.temperature = 0.0;
  p.max_tokens = max_tokens;
  return p;
}

// True when f() throws an E (any other exception, or none, is false).
template <class E, class F>
bool throws(F&& f) {
  try {
    f();
  } catch (const E&) {
    return true;
  } catch (...) {
    return false;
  }
  return false;
}

const std::vector<std::vector<std::int32_t>> kPrompts = {{1, 2, 3}, {7}, {40, 41, 9, 9, 12}, {5, 5}};

}  // namespace

SSD_TEST(generate_streams_and_modes_agree_at_temperature_0) {
  std::map<std::string, std::vector<std::vector<std::int32_t>>> out;
  for (const char* mode : {"ar", "sd", "ssd"}) {
    Rig rig(config_for(mode));
    for (const auto& prompt : kPrompts) {
      std::vector<std::int32_t> streamed;
      ssdcore::Result r = rig.engine.generate(prompt, greedy(30), [&](const std::vector<std::int32_t>& t) {
        SSD_CHECK(!t.empty());
        streamed.insert(streamed.end(), t.begin(), t.end());
        return true;
      });
      SSD_CHECK(r.ok());
      SSD_CHECK(r.finish_reason == ssdcore::FinishReason::kLength);
      SSD_CHECK_EQ(r.tokens.size(), 30u);
      SSD_CHECK(streamed == r.tokens);
      SSD_CHECK_EQ(r.metrics.generated_tokens, 30);
      out[mode].push_back(r.tokens);
    }
    SSD_CHECK_EQ(rig.target.started(), 1);
    if (std::string(mode) != "ar") SSD_CHECK_EQ(rig.draft.started(), 1);
  }
  SSD_CHECK(out["sd"] == out["ar"]);
  SSD_CHECK(out["ssd"] == out["ar"]);
}

// Draft-free sd (prompt lookup): mode "sd", backup "ngram" and a null draft runner.
SSD_TEST(draft_free_sd_equals_ar_at_temperature_0) {
  ssdcore::EngineConfig c = config_for("sd");
  c.backup = "ngram";
  TestModel target(c.max_batch, c.target_slots(), 0.0f);
  Rig ar(config_for("ar"));
  {
    ssdcore::Engine lookup(c, &target, nullptr);
    for (const auto& prompt : kPrompts) {
      ssdcore::Result r = lookup.generate(prompt, greedy(30));
      SSD_CHECK(r.ok());
      SSD_CHECK(r.tokens == ar.engine.generate(prompt, greedy(30)).tokens);
    }
    const ssdcore::StatsSnapshot s = lookup.stats();
    SSD_CHECK(s.backup_counts[static_cast<int>(ssdcore::Backup::kNgram)] > 0);
    SSD_CHECK_EQ(s.backup_counts[static_cast<int>(ssdcore::Backup::kJit)], 0u);
  }
  c.mode = "ssd";  // ssd pre-speculates with a draft model: still required
  SSD_CHECK(throws<std::invalid_argument>([&] { ssdcore::Engine e(c, &target, nullptr); }));
}

SSD_TEST(submit_wait_and_poll_match_generate) {
  std::vector<std::vector<std::int32_t>> expected;
  {
    Rig rig(config_for("ar"));
    for (const auto& prompt : kPrompts) expected.push_back(rig.engine.generate(prompt, greedy(20)).tokens);
  }
  Rig rig(config_for("ssd"));
  std::vector<ssdcore::RequestId> ids;
  for (const auto& prompt : kPrompts) ids.push_back(rig.engine.submit(prompt, greedy(20)));
  ssdcore::Result first = rig.engine.wait(ids[0]);
  SSD_CHECK(first.tokens == expected[0]);
  SSD_CHECK_EQ(first.id, ids[0]);
  SSD_CHECK(throws<std::invalid_argument>([&] { rig.engine.wait(ids[0]); }));  // already collected
  std::map<ssdcore::RequestId, std::vector<std::int32_t>> got;
  size_t finished = 0;
  ssdcore::Event ev;
  while (finished < ids.size() - 1 && rig.engine.poll(&ev, std::chrono::milliseconds(120000))) {
    SSD_CHECK(ev.id != ids[0]);
    got[ev.id].insert(got[ev.id].end(), ev.tokens.begin(), ev.tokens.end());
    if (ev.finished()) ++finished;
  }
  SSD_CHECK_EQ(finished, ids.size() - 1);
  for (size_t i = 1; i < ids.size(); ++i) SSD_CHECK(got[ids[i]] == expected[i]);
  SSD_CHECK(!rig.engine.poll(&ev, std::chrono::milliseconds(10)));
  ssdcore::StatsSnapshot s = rig.engine.stats();
  SSD_CHECK(s.rounds > 0);
  SSD_CHECK_EQ(s.accept_hist.size(), 4u);
  SSD_CHECK_EQ(s.phase_ns.size(), static_cast<size_t>(ssdcore::kNumPhases));
  SSD_CHECK(s.tokens_per_round > 1.0);  // the draft agrees often enough to beat one token a round
}

SSD_TEST(next_delivers_one_request_and_discard_forgets_it) {
  std::vector<std::vector<std::int32_t>> expected;
  {
    Rig rig(config_for("ar"));
    for (const auto& prompt : kPrompts) expected.push_back(rig.engine.generate(prompt, greedy(20)).tokens);
  }
  Rig rig(config_for("ssd"));
  const ssdcore::RequestId each = rig.engine.submit(kPrompts[0], greedy(20), ssdcore::Delivery::kNext);
  const ssdcore::RequestId once = rig.engine.submit(kPrompts[1], greedy(20), ssdcore::Delivery::kNextFinal);
  const ssdcore::RequestId dropped = rig.engine.submit(kPrompts[2], greedy(20), ssdcore::Delivery::kNext);
  rig.engine.discard(dropped);
  SSD_CHECK(throws<std::invalid_argument>([&] { rig.engine.wait(each); }));  // delivered through next()
  // Collects request `id` through next(): its tokens, and how many events carried them.
  const auto collect = [&](ssdcore::RequestId id, int* events) {
    std::vector<std::int32_t> tokens;
    ssdcore::Event ev;
    *events = 0;
    while (!ev.finished()) {
      if (!rig.engine.next(id, &ev, std::chrono::milliseconds(1000))) continue;
      SSD_CHECK_EQ(ev.id, id);
      tokens.insert(tokens.end(), ev.tokens.begin(), ev.tokens.end());
      *events += ev.tokens.empty() ? 0 : 1;
    }
    SSD_CHECK(ev.finish_reason == ssdcore::FinishReason::kLength && ev.error_kind == ssdcore::ErrorKind::kNone);
    SSD_CHECK_EQ(ev.metrics.generated_tokens, 20);
    return tokens;
  };
  int events = 0;
  SSD_CHECK(collect(each, &events) == expected[0]);
  SSD_CHECK(events > 1);
  SSD_CHECK(collect(once, &events) == expected[1]);
  SSD_CHECK_EQ(events, 1);
  ssdcore::Event ev;
  SSD_CHECK(throws<std::invalid_argument>([&] { rig.engine.next(each, &ev, std::chrono::milliseconds(1)); }));
  // the discarded request is forgotten once it ends (cancelled, or finished first)
  while (rig.engine.pending() != 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  SSD_CHECK(!rig.engine.poll(&ev, std::chrono::milliseconds(1)));
  const ssdcore::StatsSnapshot s = rig.engine.stats();
  SSD_CHECK_EQ(s.requests_finished[static_cast<int>(ssdcore::FinishReason::kLength)] +
                   s.requests_finished[static_cast<int>(ssdcore::FinishReason::kCancelled)],
               3u);
}

SSD_TEST(concurrent_generate_from_several_threads) {
  Rig rig(config_for("ssd"));
  std::vector<std::vector<std::int32_t>> results(kPrompts.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < kPrompts.size(); ++i) {
    threads.emplace_back([&, i] { results[i] = rig.engine.generate(kPrompts[i], greedy(25)).tokens; });
  }
  for (auto& t : threads) t.join();
  Rig ar(config_for("ar"));
  for (size_t i = 0; i < kPrompts.size(); ++i) {
    SSD_CHECK(results[i] == ar.engine.generate(kPrompts[i], greedy(25)).tokens);
  }
}

SSD_TEST(callback_false_cancels_and_exception_propagates) {
  Rig rig(config_for("ssd"));
  rig.target.set_sleep_us(200);
  int calls = 0;
  ssdcore::Result r = rig.engine.generate({1, 2}, greedy(100), [&](const std::vector<std::int32_t>&) {
    return ++calls < 2;
  });
  SSD_CHECK(r.finish_reason == ssdcore::FinishReason::kCancelled);
  SSD_CHECK(r.ok());
  SSD_CHECK(r.tokens.size() < 100u);
  SSD_CHECK_EQ(calls, 2);
  bool thrown = false;
  try {
    rig.engine.generate({3}, greedy(100), [](const std::vector<std::int32_t>&) -> bool {
      throw std::runtime_error("callback failed");
    });
  } catch (const std::runtime_error& e) {
    thrown = std::string(e.what()) == "callback failed";
  }
  SSD_CHECK(thrown);
  SSD_CHECK(rig.engine.generate({3}, greedy(10)).ok());  // still usable
}

SSD_TEST(runner_errors_become_error_results) {
  for (const char* mode : {"ar", "ssd"}) {
    Rig rig(config_for(mode));
    rig.target.fail_at(rig.target.calls() + 3);
    ssdcore::Result r = rig.engine.generate({4, 5, 6}, greedy(40));
    SSD_CHECK(!r.ok());
    SSD_CHECK(r.finish_reason == ssdcore::FinishReason::kError);
    SSD_CHECK(r.error.find("target model runner failed") != std::string::npos);
    SSD_CHECK(r.error.find("injected failure") != std::string::npos);
    SSD_CHECK(rig.engine.generate({4, 5, 6}, greedy(10)).ok());  // the engine stays usable
  }
  Rig rig(config_for("ar"));
  rig.target.set_bad_vocab(true);
  ssdcore::Result r = rig.engine.generate({1}, greedy(5));
  SSD_CHECK(!r.ok());
  SSD_CHECK(r.error.find("expected at least") != std::string::npos);
}

SSD_TEST(invalid_arguments_throw_and_leave_the_engine_usable) {
  Rig rig(config_for("ssd"));
  SSD_CHECK(throws<std::invalid_argument>([&] { rig.engine.generate({}, greedy(5)); }));
  const std::int32_t outside = static_cast<std::int32_t>(kVocab);
  SSD_CHECK(throws<std::invalid_argument>([&] { rig.engine.submit({1, outside}, greedy(5)); }));
  ssdcore::SamplingParams bad = greedy(5);
  bad.temperature = -1.0;
  SSD_CHECK(throws<std::invalid_argument>([&] { rig.engine.submit({1}, bad); }));
  SSD_CHECK(throws<std::invalid_argument>([&] { rig.engine.submit({1}, greedy(0)); }));
  SSD_CHECK(throws<std::invalid_argument>([&] { rig.engine.submit({1, 2}, greedy(127)); }));  // > max_context
  SSD_CHECK(throws<std::invalid_argument>([&] { rig.engine.wait(12345); }));
  SSD_CHECK(rig.engine.generate({1}, greedy(5)).ok());

  ssdcore::EngineConfig c = config_for("ssd");
  c.K = 0;
  SSD_CHECK(throws<std::invalid_argument>([&] { c.validate(); }));
  TestModel t(4, 128, 0.0f);
  SSD_CHECK(throws<std::invalid_argument>([&] { ssdcore::Engine e(c, &t, &t); }));
  SSD_CHECK(throws<std::invalid_argument>([&] { ssdcore::Engine e(config_for("sd"), &t, nullptr); }));
  SSD_CHECK(throws<std::invalid_argument>([&] { ssdcore::Engine e(config_for("ar"), nullptr, nullptr); }));
  try {
    c.validate();
  } catch (const std::invalid_argument& e) {
    SSD_CHECK(std::string(e.what()).find("EngineConfig.K") != std::string::npos);
  }
}

SSD_TEST(close_finishes_running_requests_and_rejects_new_ones) {
  Rig rig(config_for("ssd"));
  rig.target.set_sleep_us(2000);
  std::vector<ssdcore::RequestId> ids;
  for (int i = 0; i < 6; ++i) ids.push_back(rig.engine.submit({1, 2, 3}, greedy(100)));  // 2 queued
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  rig.engine.close();
  rig.engine.close();  // idempotent
  for (ssdcore::RequestId id : ids) {
    ssdcore::Result r = rig.engine.wait(id);
    SSD_CHECK(r.finish_reason == ssdcore::FinishReason::kError ||
              r.finish_reason == ssdcore::FinishReason::kLength);
  }
  SSD_CHECK(throws<std::logic_error>([&] { rig.engine.submit({1}, greedy(5)); }));
}

SSD_TEST(config_strings_stats_names_and_version) {
  ssdcore::EngineConfig c;
  SSD_CHECK_EQ(ssdcore::EngineConfig::field_names().size(), 15u);
  SSD_CHECK(c.to_string().find("mode='ssd'") != std::string::npos);
  SSD_CHECK(std::string(ssdcore::version()) == SSDCORE_VERSION_STRING);
  SSD_CHECK(std::string(ssdcore::to_string(ssdcore::Phase::kTargetVerify)) == "target_verify");
  SSD_CHECK(std::string(ssdcore::to_string(ssdcore::SpecSource::kCacheHit)) == "cache_hit");
  SSD_CHECK(std::string(ssdcore::to_string(ssdcore::Backup::kNgram)) == "ngram");
  SSD_CHECK(std::string(ssdcore::to_string(ssdcore::FinishReason::kCancelled)) == "cancelled");
  SSD_CHECK(std::string(ssdcore::to_string(static_cast<ssdcore::Phase>(99))) == "?");
}

int main() { return ssd_test::run_all(); }
